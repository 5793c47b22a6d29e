"""Our decode GEMV against cuBLAS (torch.nn.functional.linear) on Llama-3.1-8B's projections.

    python benchmarks/diagnostics/gemv_vs_cublas.py [--tokens 1,2,4,8] [--dtype bfloat16]
        [--shapes qkv,o_proj,gate_up,down,lm_head]

Per shape and token count, every launch (`gemv_table.candidate_launches`: up to 16 tokens
`CANDIDATES`, above that `WIDE_CANDIDATES` padded to 32, 64 or 128 tokens, each at every split
count), the linear op as the table sets it up, and F.linear are first checked
against float32 math (relative error below 1e-2), then each is captured in a CUDA graph over
rotating weight copies (more than 200 MB per shape, so each call reads its weight from DRAM,
not L2) and timed by CUDA events: the median replay over the calls it holds. Bytes are the
weight plus x and y once; % is of the device-to-device copy bandwidth measured first, in the
same run. The last lines name the shapes our op wins and print the fastest launches as
`gemv_table.TUNED` entries.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence

import attrs
import torch

from tenon.bench.gpu_limits import measure_copy_bandwidth, time_op_s
from tenon.plugins.ops.triton_kernels.gemv import GemvConfig, gemv
from tenon.plugins.ops.triton_kernels.gemv_table import candidate_launches
from tenon.plugins.ops.triton_kernels.linear import linear

SHAPES = (  # name, out_features, in_features: Llama-3.1-8B, one GPU
    ("qkv", 6144, 4096),
    ("o_proj", 4096, 4096),
    ("gate_up", 28672, 4096),
    ("down", 4096, 14336),
    ("lm_head", 128256, 4096),
)
ROTATION_BYTES = 200e6  # weight copies per shape: together past any L2
REPLAY_BYTES = 400e6  # weight bytes one graph replay streams at least
MAX_RELATIVE_ERROR = 1e-2
NUM_WARMUP, NUM_REPEATS = 3, 15

Linear = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@attrs.frozen(kw_only=True)
class Timing:
    name: str  # "cublas", "op" or a launch
    call_s: float
    config: GemvConfig | None = None  # the launch's


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.float() - expected).norm() / expected.norm())


def graph_call_s(function: Linear, x: torch.Tensor, weights: Sequence[torch.Tensor]) -> float:
    """Median seconds per call of `function` replayed in a CUDA graph over `weights` in turn."""
    side_stream = torch.cuda.Stream()
    side_stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side_stream):
        for weight in weights:  # compiled and warm before capture
            function(x, weight)
    torch.cuda.current_stream().wait_stream(side_stream)
    weight_bytes = weights[0].nbytes * len(weights)
    num_rounds = max(1, math.ceil(REPLAY_BYTES / weight_bytes))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(num_rounds):
            for weight in weights:
                function(x, weight)
    samples_s = time_op_s(graph.replay, x.device, num_warmup=NUM_WARMUP, num_repeats=NUM_REPEATS)
    del graph
    return statistics.median(samples_s) / (num_rounds * len(weights))


def launch_function(config: GemvConfig) -> Linear:
    return lambda x, weight: gemv(x, weight, None, config)


def measure_shape(
    out_features: int,
    in_features: int,
    token_counts: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
) -> dict[int, list[Timing]]:
    weight_bytes = out_features * in_features * torch.finfo(dtype).bits // 8
    num_copies = max(1, math.ceil(ROTATION_BYTES / weight_bytes))
    generator = torch.Generator(device=device).manual_seed(0)
    weights = [
        (torch.randn(out_features, in_features, device=device, generator=generator)
         / in_features**0.5).to(dtype)
        for _ in range(num_copies)
    ]  # fmt: skip
    x_all = torch.randn(max(token_counts), in_features, device=device, generator=generator)
    x_all = x_all.to(dtype)
    # float32 math on the same 16-bit inputs: [max_tokens, out_features]
    expected_all = torch.nn.functional.linear(x_all.float(), weights[0].float())
    timings: dict[int, list[Timing]] = {}
    for num_tokens in token_counts:
        x, expected = x_all[:num_tokens].contiguous(), expected_all[:num_tokens]
        functions: dict[str, tuple[Linear, GemvConfig | None]] = {
            "cublas": (torch.nn.functional.linear, None),
            "op": (linear, None),
        }
        functions.update({str(c): (launch_function(c), c) for c in candidate_launches(num_tokens)})
        rows = []
        for name, (function, config) in functions.items():
            try:
                error = relative_error(function(x, weights[0]), expected)
            except Exception as failure:  # a launch the card cannot run: report, go on
                print(f"  {name}: failed: {type(failure).__name__}: {failure}"[:300])
                continue
            if error > MAX_RELATIVE_ERROR:
                print(f"  {name}: WRONG, relative error {error:.2e} at {num_tokens} tokens")
                continue
            call_s = graph_call_s(function, x, weights)
            rows.append(Timing(name=name, call_s=call_s, config=config))
        timings[num_tokens] = rows
    del weights, expected_all
    torch.cuda.empty_cache()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="1,2,4,8", help="token counts, comma-separated")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--shapes", default=",".join(name for name, _, _ in SHAPES),
                        help="which of the projections, comma-separated")
    args = parser.parse_args()
    chosen = set(args.shapes.split(","))
    token_counts = [int(count) for count in args.tokens.split(",")]
    dtype = getattr(torch, args.dtype)
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    started_s = time.perf_counter()
    torch.backends.cuda.matmul.allow_tf32 = False

    device = torch.device("cuda")
    copy = measure_copy_bandwidth(device)
    copy_bytes_per_s = copy.rate_per_s
    print(f"{torch.cuda.get_device_name(device)}; torch {torch.__version__}; dtype {args.dtype}")
    print(f"copy bandwidth {copy_bytes_per_s / 1e12:.3f} TB/s (2 GiB device copy, read+write)")
    header = f"{'shape':<8} {'M':>3} {'what':<30} {'us':>8} {'GB/s':>7} {'%copy':>6}"
    wins, launch_wins, tuned = [], [], []
    for shape_name, out_features, in_features in (s for s in SHAPES if s[0] in chosen):
        print(f"== {shape_name} [{out_features}, {in_features}]")
        by_tokens = measure_shape(out_features, in_features, token_counts, dtype, device)
        print(header)
        element_bytes = torch.finfo(dtype).bits // 8
        for num_tokens, rows in by_tokens.items():
            moved_bytes = element_bytes * (
                out_features * in_features + num_tokens * (in_features + out_features)
            )
            by_name = {row.name: row for row in rows}
            launches = [row for row in rows if row.name not in ("cublas", "op")]
            best = min(launches, key=lambda row: row.call_s, default=None)
            shown = [by_name.get("cublas"), by_name.get("op"), best]
            for label, row in zip(("cublas", "op", "best launch"), shown, strict=True):
                if row is None:
                    continue
                rate = moved_bytes / row.call_s
                what = label if label != "best launch" else row.name
                print(
                    f"{shape_name:<8} {num_tokens:>3} {what:<30} {row.call_s * 1e6:>8.2f} "
                    f"{rate / 1e9:>7.0f} {100 * rate / copy_bytes_per_s:>5.1f}%"
                )
            cublas, op = by_name.get("cublas"), by_name.get("op")
            if cublas is not None and op is not None and op.call_s < cublas.call_s:
                wins.append(f"{shape_name}@M={num_tokens} ({cublas.call_s / op.call_s:.2f}x)")
            bucket_config = "None"
            if best is not None and cublas is not None and best.call_s < cublas.call_s:
                bucket_config = repr(best.config)
                launch_wins.append(
                    f"{shape_name}@M={num_tokens} ({cublas.call_s / best.call_s:.2f}x)"
                )
            tuned.append(f"({out_features}, {in_features}, {num_tokens}): {bucket_config},")
    print("our op (gemv_table as it stands) beats F.linear on: " + (", ".join(wins) or "nothing"))
    print("the best launch beats F.linear on: " + (", ".join(launch_wins) or "nothing"))
    print("gemv_table.TUNED entries: the fastest launch where it beats F.linear, else None:")
    for entry in tuned:
        print("    " + entry)
    print(f"total {time.perf_counter() - started_s:.1f} s")


if __name__ == "__main__":
    main()
