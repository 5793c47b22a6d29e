"""The offline API, shaped like vLLM's: `LLM(model=...)`, `.generate(...)`, `.chat(...)`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, cast

from tqdm import tqdm

from tenon.engine_args import EngineArgs
from tenon.frontend.input_processor import (
    PromptInput,
    apply_chat_template,
    child_requests,
    normalise_prompts,
    process_prompt,
)
from tenon.frontend.output_processor import OutputProcessor, RequestTracker
from tenon.outputs import RequestOutput
from tenon.sampling.params import SamplingParams
from tenon.startup import heap
from tenon.startup.engine_builder import Engine, build_engine
from tenon.startup.phases import StartupLog

Message = Mapping[str, Any]


class LLM:
    """An engine in this process. `LLM()` serves the default model (SmolLM2-135M-Instruct)."""

    def __init__(self, model: str | None = None, *, log_startup: bool = True, **engine_args: Any) -> None:
        args = EngineArgs.from_kwargs(model=model, **engine_args)
        self.engine: Engine = build_engine(args, log=StartupLog() if log_startup else StartupLog(echo=None))
        self.tokenizer = self.engine.tokenizer
        self._output_processor = OutputProcessor(self.tokenizer)
        self._counter = itertools.count()

    @property
    def config(self) -> Any:
        return self.engine.config

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def reset_prefix_cache(self) -> bool:
        """Forget the device prefix cache (vLLM's `LLM.reset_prefix_cache`). Returns False,
        changing nothing, while a request still holds blocks. Lower KV tiers keep their blocks."""
        return bool(self.engine.client.core.scheduler.kv_cache_manager.reset_prefix_cache())

    def generate(
        self,
        prompts: PromptInput | Sequence[PromptInput],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        *,
        use_tqdm: bool = False,
    ) -> list[RequestOutput]:
        """Run prompts to completion; outputs come back in the order of `prompts`."""
        prompt_list = normalise_prompts(prompts)
        params_list = self._params_per_prompt(sampling_params, len(prompt_list))
        # Validate everything before queuing anything, so one bad prompt leaves no residue.
        vocab_size = int(self.engine.hf_config.vocab_size)
        processed = [process_prompt(p, self.tokenizer, vocab_size) for p in prompt_list]
        request_ids: list[str] = []
        added: list[str] = []
        try:
            for prompt, params in zip(processed, params_list, strict=True):
                request_id = str(next(self._counter))
                children = child_requests(
                    request_id, prompt, params,
                    eos_token_id=self.engine.eos_token_id,
                    max_model_len=self.engine.config.model.max_model_len,
                )
                tracker = RequestTracker(request_id, prompt.prompt, prompt.prompt_token_ids,
                                         [(c.request_id, cast(SamplingParams, c.sampling_params)) for c in children],
                                         self.tokenizer)
                for child in children:
                    self.engine.client.add_request(child)
                    added.append(child.request_id)
                self._output_processor.add(tracker)
                request_ids.append(request_id)
        except Exception:
            # One bad request leaves nothing behind: the ones queued before it are withdrawn.
            self.engine.client.abort_requests(added)
            self._output_processor.forget(added)
            raise
        return self._run(request_ids, use_tqdm)

    def chat(
        self,
        messages: Sequence[Message] | Sequence[Sequence[Message]],
        sampling_params: SamplingParams | None = None,
        *,
        add_generation_prompt: bool = True,
        use_tqdm: bool = False,
    ) -> list[RequestOutput]:
        """Apply the model's chat template to one conversation (or several) and generate."""
        conversations = cast(
            Sequence[Sequence[Message]],
            [messages] if messages and isinstance(messages[0], Mapping) else messages,
        )
        prompts: list[PromptInput] = [
            {"prompt_token_ids": self.apply_chat_template(c, add_generation_prompt=add_generation_prompt)}
            for c in conversations
        ]
        return self.generate(prompts, sampling_params, use_tqdm=use_tqdm)

    def apply_chat_template(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> list[int]:
        return apply_chat_template(self.tokenizer, messages, add_generation_prompt=add_generation_prompt)

    def shutdown(self) -> None:
        """Free the engine's memory; the object cannot generate afterwards."""
        self.engine.client.shutdown()
        heap.release()  # what start-up froze may be collected again

    def _params_per_prompt(
        self, sampling_params: SamplingParams | Sequence[SamplingParams] | None, count: int
    ) -> list[SamplingParams]:
        if sampling_params is None:
            return [SamplingParams()] * count
        if isinstance(sampling_params, SamplingParams):
            return [sampling_params] * count
        params = list(sampling_params)
        if len(params) != count:
            raise ValueError(f"got {len(params)} sampling params for {count} prompts; give one or one per prompt")
        return params

    def _run(self, request_ids: list[str], use_tqdm: bool) -> list[RequestOutput]:
        pending = set(request_ids)
        results: dict[str, RequestOutput] = {}
        client = self.engine.client
        with tqdm(total=len(request_ids), disable=not use_tqdm, desc="requests") as progress:
            while pending:
                finished, to_abort = self._output_processor.process(client.get_outputs())
                if to_abort:
                    client.abort_requests(to_abort)
                for output in finished:
                    results[output.request_id] = output
                    pending.discard(output.request_id)
                    progress.update(1)
                if pending and not client.has_unfinished_requests() and not to_abort:
                    raise RuntimeError(f"engine went idle with requests {sorted(pending)} unfinished")
        return [results[request_id] for request_id in request_ids]
