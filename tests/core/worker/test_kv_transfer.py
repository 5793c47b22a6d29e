"""The worker's KV transfer glue calls the connector's worker side in the documented order,
around the runner's step, reports what it says, and closes the connector at shutdown."""

from __future__ import annotations

from typing import Any

import torch

from tenon.engine.scheduler_output import RunnerOutput, SchedulerOutput
from tenon.spec.kv_connector import KVConnectorWorker
from tenon.worker.kv_transfer import KVTransferWorker
from tenon.worker.worker import Worker

NUM_LAYERS = 3


class RecordingWorker(KVConnectorWorker):
    def __init__(self, *, fail_start: bool = False) -> None:
        super().__init__(role="kv_both", extra_config={})
        self.calls: list[tuple[Any, ...]] = []
        self.fail_start = fail_start

    def register_kv_cache(self, kv_cache: torch.Tensor, block_size: int) -> None:
        self.calls.append(("register", tuple(kv_cache.shape), block_size))

    def start_load(self, step_metadata: Any) -> None:
        self.calls.append(("start_load", step_metadata))
        if self.fail_start:
            raise OSError("store unreachable")

    def wait_for_layer_load(self, layer_index: int) -> None:
        self.calls.append(("wait_for_layer_load", layer_index))

    def save_layer(self, layer_index: int, kv_layer: torch.Tensor, metadata: Any) -> None:
        self.calls.append(("save_layer", layer_index, kv_layer.data_ptr(), metadata))

    def wait_for_save(self) -> None:
        self.calls.append(("wait_for_save",))

    def finished_transfers(self) -> tuple[set[str], set[str]]:
        self.calls.append(("finished_transfers",))
        return {"saved"}, {"loaded"}

    def failed_block_ids(self) -> set[int]:
        self.calls.append(("failed_block_ids",))
        return {7}

    def take_stored_bytes(self) -> int:
        return 4096


class StubRunner:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls
        self.last_attention_metadata: Any = "metadata of the step"

    def execute(self, scheduler_output: SchedulerOutput) -> RunnerOutput:
        self.calls.append(("forward",))
        return RunnerOutput(request_ids=["r"], sampled_token_ids=[[5]])


def scheduler_output(num_tokens: int) -> SchedulerOutput:
    return SchedulerOutput(
        scheduled_new_requests=[], scheduled_cached_requests=[],
        num_scheduled_tokens={"r": num_tokens} if num_tokens else {},
        total_num_scheduled_tokens=num_tokens, finished_request_ids=set(),
        preempted_request_ids=set(), kv_connector_metadata="step metadata",
    )


def make(connector: RecordingWorker) -> tuple[KVTransferWorker, list[torch.Tensor]]:
    kv_cache = torch.zeros(5, NUM_LAYERS, 2, 4, 1, 2)
    kv_layers = [kv_cache[:, layer] for layer in range(NUM_LAYERS)]
    ticks = iter(range(100))
    return KVTransferWorker(connector, kv_cache=kv_cache, kv_layers=kv_layers, block_size=4,
                            clock=lambda: float(next(ticks))), kv_layers


def test_calls_around_a_step_in_order() -> None:
    connector = RecordingWorker()
    transfer, kv_layers = make(connector)
    output = transfer.execute(StubRunner(connector.calls), scheduler_output(3))  # type: ignore[arg-type]
    assert connector.calls == [
        ("register", (5, NUM_LAYERS, 2, 4, 1, 2), 4),
        ("start_load", "step metadata"),
        *[("wait_for_layer_load", layer) for layer in range(NUM_LAYERS)],
        ("forward",),
        *[("save_layer", layer, kv_layers[layer].data_ptr(), "metadata of the step")
          for layer in range(NUM_LAYERS)],
        ("wait_for_save",),
        ("finished_transfers",),
        ("failed_block_ids",),
    ]
    assert (output.request_ids, output.sampled_token_ids) == (["r"], [[5]])
    kv = output.kv_connector_output
    assert kv is not None
    assert (kv.finished_sending, kv.finished_recving, kv.failed_block_ids) == (
        frozenset({"saved"}), frozenset({"loaded"}), frozenset({7}))
    # The clock ticks once per read: loads took one tick, saves one tick.
    assert (kv.load_wait_s, kv.save_s, kv.stored_bytes, kv.all_loads_failed) == (1.0, 1.0, 4096, False)


def test_a_step_without_tokens_still_runs_saves_but_no_save_layer() -> None:
    connector = RecordingWorker()
    transfer, _ = make(connector)
    transfer.execute(StubRunner(connector.calls), scheduler_output(0))  # type: ignore[arg-type]
    names = [call[0] for call in connector.calls]
    assert "save_layer" not in names
    assert names[-3:] == ["wait_for_save", "finished_transfers", "failed_block_ids"]


def test_a_connector_raising_while_loading_fails_the_steps_loads() -> None:
    connector = RecordingWorker(fail_start=True)
    transfer, _ = make(connector)
    output = transfer.execute(StubRunner(connector.calls), scheduler_output(2))  # type: ignore[arg-type]
    assert output.kv_connector_output is not None and output.kv_connector_output.all_loads_failed
    assert ("wait_for_layer_load", 0) not in connector.calls


class ClosingWorker(RecordingWorker):
    def close(self) -> None:
        self.calls.append(("close",))


class PlainWorker(RecordingWorker):
    """Neither `take_stored_bytes` nor `close`: the spec's defaults apply."""

    take_stored_bytes = KVConnectorWorker.take_stored_bytes


def test_close_calls_the_connectors_close_and_shutdown_closes_first() -> None:
    connector = ClosingWorker()
    transfer, _ = make(connector)
    runner = StubRunner(connector.calls)
    runner.states, runner.kv_layers, runner.model, runner.graphs = {"r": 1}, [1], "model", "graphs"  # type: ignore[attr-defined]
    worker = Worker(runner=runner, platform=None, kv_cache=torch.ones(2), kv_transfer=transfer)  # type: ignore[arg-type]
    worker.shutdown()
    assert connector.calls[-1] == ("close",)
    assert worker.kv_transfer is None and worker.kv_cache.numel() == 0
    assert (runner.states, runner.kv_layers, runner.model, runner.graphs) == ({}, [], None, None)  # type: ignore[attr-defined]


def test_a_connector_without_close_or_stored_bytes_uses_the_defaults() -> None:
    connector = PlainWorker()
    transfer, _ = make(connector)
    output = transfer.execute(StubRunner(connector.calls), scheduler_output(2))  # type: ignore[arg-type]
    assert output.kv_connector_output is not None and output.kv_connector_output.stored_bytes == 0
    transfer.close()  # nothing to call
    assert "close" not in [call[0] for call in connector.calls]
