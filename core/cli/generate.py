"""`tenon generate PROMPT`: one answer from the model (chat template applied when it has one)."""

from __future__ import annotations

import argparse

import attrs

from tenon.cli.sampling_flags import add_sampling_flags, sampling_params_from
from tenon.engine_args import EngineArgs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="generate an answer to one prompt")
    parser.add_argument("prompt", help="the prompt text")
    parser.add_argument("--no-chat-template", action="store_true",
                        help="complete the raw prompt instead of applying the chat template")
    add_sampling_flags(parser)
    EngineArgs.add_cli_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tenon.frontend.llm import LLM

    llm = LLM(**attrs.asdict(EngineArgs.from_cli_args(args), recurse=False))
    params = sampling_params_from(args)
    use_template = not args.no_chat_template and bool(getattr(llm.tokenizer, "chat_template", None))
    if use_template:
        output = llm.chat([{"role": "user", "content": args.prompt}], params)[0]
    else:
        output = llm.generate(args.prompt, params)[0]
    print(output.outputs[0].text)
    llm.shutdown()
    return 0
