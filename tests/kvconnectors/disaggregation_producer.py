"""The producer of the two-process disaggregation test, run as a script:

    python disaggregation_producer.py MODEL_DIR STORE_DIR PROMPTS_JSON

Prefills each prompt (one generated token) with `SharedStorageConnector` as kv_producer, so
the blocks land in STORE_DIR, then prints the engine's stats as JSON and exits.
"""

from __future__ import annotations

import json
import sys

import attrs

from tenon import LLM, SamplingParams
from tenon.testing.kv_connector_harness import ENGINE_ARGS, published, transfer_config
from tenon_kvconnectors.registration import SHARED_STORAGE_SPEC


def main(model_dir: str, store_dir: str, prompts_json: str) -> None:
    prompts = json.loads(prompts_json)
    with published(SHARED_STORAGE_SPEC):  # as installed, or through a temporary entry point
        config = transfer_config(
            "SharedStorageConnector", "kv_producer", {"shared_storage_path": store_dir}
        )
        llm = LLM(model_dir, kv_transfer_config=config, **ENGINE_ARGS)
        params = SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True)
        llm.generate([{"prompt_token_ids": prompt} for prompt in prompts], params)
        print(json.dumps(attrs.asdict(llm.engine.client.stats())))
        llm.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
