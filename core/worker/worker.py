"""The worker: owns the device, the KV cache and the model runner; executes scheduled steps."""

from __future__ import annotations

from typing import Any

import torch

from tenon.engine.scheduler_output import RunnerOutput, SchedulerOutput
from tenon.worker.kv_transfer import KVTransferWorker
from tenon.worker.launched_step import LaunchedStep
from tenon.worker.model_runner import ModelRunner


class Worker:
    def __init__(
        self,
        *,
        runner: ModelRunner,
        platform: Any,
        kv_cache: torch.Tensor,
        kv_transfer: KVTransferWorker | None = None,
    ) -> None:
        self.runner = runner
        self.platform = platform
        self.kv_cache = kv_cache
        self.kv_transfer = kv_transfer  # the KV connector's worker side; None without one

    def execute(self, scheduler_output: SchedulerOutput) -> RunnerOutput:
        return self.launch(scheduler_output).result()

    def launch(self, scheduler_output: SchedulerOutput) -> LaunchedStep:
        """Queue the step; its `result()` waits for the tokens. With a KV connector the step
        runs to the end here (the connector's loads and saves wrap it)."""
        with torch.inference_mode():
            if self.kv_transfer is not None:
                return LaunchedStep.done(self.kv_transfer.execute(self.runner, scheduler_output))
            return self.runner.launch(scheduler_output)

    def shutdown(self) -> None:
        """Finish the KV connector's queued writes (a disk tier's), then drop device memory so
        a new engine can start in the same process."""
        kv_transfer, self.kv_transfer = self.kv_transfer, None
        try:
            if kv_transfer is not None:
                kv_transfer.close()
        finally:  # a connector failing to close must not keep the device memory alive
            self.runner.states.clear()
            self.kv_cache = torch.empty(0)
            self.runner.kv_layers = []
            self.runner.model = None
            self.runner.graphs = None  # captured graphs hold their memory pool until dropped
