"""Fixtures for tests/integration: a live Tenon server for third-party clients (eval_server.py)."""

from tests.integration.eval_server import (  # noqa: F401  (fixtures, found by name)
    eval_model_dir,
    eval_server,
    offline_hub,
)
