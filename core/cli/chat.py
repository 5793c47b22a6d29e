"""`tenon chat`: a conversation on stdin; each line is a user turn, the history is kept."""

from __future__ import annotations

import argparse
import sys

import attrs

from tenon.cli.sampling_flags import add_sampling_flags, sampling_params_from
from tenon.engine_args import EngineArgs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("chat", help="chat with the model on stdin")
    parser.add_argument("--system", default=None, help="a system message to start with")
    add_sampling_flags(parser)
    EngineArgs.add_cli_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tenon.frontend.llm import LLM

    llm = LLM(**attrs.asdict(EngineArgs.from_cli_args(args), recurse=False))
    params = sampling_params_from(args)
    messages = [{"role": "system", "content": args.system}] if args.system else []
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line.rstrip("\n")})
        answer = llm.chat(messages, params)[0].outputs[0].text
        messages.append({"role": "assistant", "content": answer})
        print(answer, flush=True)
    llm.shutdown()
    return 0
