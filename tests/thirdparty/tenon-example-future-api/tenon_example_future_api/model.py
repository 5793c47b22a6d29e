"""Stands for an implementation that needs contract features this Tenon lacks.

The host never imports this module: the spec naming it is quarantined for its api_version.
"""

from __future__ import annotations

raise ImportError("tenon_example_future_api.model needs tenon.spec API 9.0")
