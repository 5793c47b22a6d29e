"""lm-eval's `local-completions` against a live Tenon server scores like lm-eval's `hf`.

Both score the 20-question task in lm_eval_task/ on the same tiny random weights in float32: the
server through /v1/completions (`echo`, `logprobs=1`, `max_tokens=1`, prompts as token ids,
batched and concurrent), the reference with transformers on the CPU. The accuracy is near
chance; what matters is that it is the same, and that every choice's log-likelihood agrees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.core.server.live_server import LiveServer
from tests.integration.eval_server import EVAL_API_KEY, EVAL_MAX_MODEL_LEN, EVAL_SERVED_NAME

lm_eval = pytest.importorskip("lm_eval",
                              reason="lm-eval is not installed: pip install 'lm-eval[api]'")
pytest.importorskip("tenacity", reason="lm-eval's API models need its [api] extra: "
                    "pip install 'lm-eval[api]'")

from lm_eval.tasks import TaskManager  # noqa: E402  (after the skip)

TASK_DIR = Path(__file__).with_name("lm_eval_task")
TASK_NAME = "tenon_tiny_mc"
NUM_DOCS = 20
NUM_CHOICES = 4
BATCH_SIZE = 8
# float32 on both sides; the sums differ only by accumulation order.
LOGLIKELIHOOD_TOLERANCE = 1e-3

pytestmark = pytest.mark.slow


def _evaluate(model: str, model_args: dict[str, Any]) -> dict[str, Any]:
    results = lm_eval.simple_evaluate(
        model=model, model_args=model_args, tasks=[TASK_NAME], batch_size=BATCH_SIZE,
        task_manager=TaskManager(include_path=str(TASK_DIR)), log_samples=True)
    assert results is not None
    return results


def _choice_scores(results: dict[str, Any]) -> list[list[tuple[float, bool]]]:
    """Per document (by doc_id), per choice: (log-likelihood of the choice, is it greedy)."""
    samples = sorted(results["samples"][TASK_NAME], key=lambda sample: sample["doc_id"])
    return [[(float(loglikelihood), bool(is_greedy))
             for [(loglikelihood, is_greedy)] in sample["resps"]]
            for sample in samples]


def _per_doc_accuracy(results: dict[str, Any]) -> list[float]:
    samples = sorted(results["samples"][TASK_NAME], key=lambda sample: sample["doc_id"])
    return [sample["acc"] for sample in samples]


@pytest.fixture(scope="module")
def server_results(eval_server: LiveServer, eval_model_dir: Path) -> dict[str, Any]:
    return _evaluate("local-completions", {
        "model": EVAL_SERVED_NAME,
        "base_url": f"{eval_server.base_url}/v1/completions",
        "tokenizer_backend": "huggingface",
        "tokenizer": str(eval_model_dir),
        "tokenized_requests": True,
        "max_length": EVAL_MAX_MODEL_LEN,
        "num_concurrent": 2,
        "max_retries": 1,
        "header": {"Authorization": f"Bearer {EVAL_API_KEY}"},
    })


@pytest.fixture(scope="module")
def hf_results(eval_model_dir: Path, offline_hub: None) -> dict[str, Any]:
    return _evaluate("hf", {"pretrained": str(eval_model_dir), "dtype": "float32", "device": "cpu"})


def test_task_is_scored_whole(server_results: dict[str, Any]) -> None:
    scores = _choice_scores(server_results)
    assert server_results["results"][TASK_NAME]["sample_len"] == NUM_DOCS
    assert [len(choices) for choices in scores] == [NUM_CHOICES] * NUM_DOCS
    # Real scores, not a constant: the choices of a question are told apart.
    assert all(len({loglikelihood for loglikelihood, _ in choices}) == NUM_CHOICES
               for choices in scores)


def test_accuracy_matches_hf(server_results: dict[str, Any], hf_results: dict[str, Any]) -> None:
    server_metrics = server_results["results"][TASK_NAME]
    hf_metrics = hf_results["results"][TASK_NAME]
    for metric in ("acc,none", "acc_norm,none"):
        assert server_metrics[metric] == hf_metrics[metric], metric
    assert _per_doc_accuracy(server_results) == _per_doc_accuracy(hf_results)


def test_choice_loglikelihoods_match_hf(server_results: dict[str, Any],
                                        hf_results: dict[str, Any]) -> None:
    server_scores = _choice_scores(server_results)
    hf_scores = _choice_scores(hf_results)
    assert len(server_scores) == len(hf_scores) == NUM_DOCS
    for doc_id, server_choices in enumerate(server_scores):
        hf_choices = hf_scores[doc_id]
        for (server_loglikelihood, server_greedy), (hf_loglikelihood, hf_greedy) in zip(
                server_choices, hf_choices, strict=True):
            assert server_loglikelihood == pytest.approx(hf_loglikelihood,
                                                         abs=LOGLIKELIHOOD_TOLERANCE), doc_id
            assert server_greedy == hf_greedy, doc_id
