"""Would two micro-batches on two streams hide decode attention behind the matmuls?

A batched decode step runs each layer's matmuls (compute-bound from a few hundred rows) and its
attention (bound by reading the KV cache) one after the other; the offline limit model assumes
they overlap. This probe times, per layer of llama-3.1-8b (bf16, random weights and KV, several
layers so L2 serves nothing), for each (batch, context):

    gemm(B)          the layer's matmuls for B rows (o_proj, gate_up, SiLU-and-mul, down, qkv)
    attn(B)          the Triton decode attention for B requests
    serial           gemm(B) then attn(B)                         (what a step does today)
    halves serial    gemm(B/2), attn(B/2), gemm(B/2), attn(B/2)   (micro-batches, one stream)
    pipelined        attn(A) beside gemm(B') on a second stream, then gemm(A) beside attn(B'),
                     joined by events (the two-micro-batch schedule)
    free streams     each half's gemm-attn chain on its own stream, no joins

Every variant is captured in one CUDA graph per cycle over the layers and replayed.

`carveouts=16,32` repeats every case with cuBLAS told to leave that many SMs free
(`torch._C._set_sm_carveout_experimental`, set before capture), so attention on the other
stream has SMs of its own instead of waiting for the matmul's blocks to drain.

    python3 benchmarks/diagnostics/overlap_probe.py [batch:context ...] [carveouts=N,N,...]
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import torch
import torch.nn.functional as F

from tenon.bench.attention_choice import choose_attention_backend
from tenon.bench.attention_micro import AttentionShape, make_decode_buffers
from tenon.bench.gpu_limits import time_op_s
from tenon.spec.attention import AttentionBackendConfig

HIDDEN, INTERMEDIATE, QKV = 4096, 14336, 6144
NUM_LAYERS = 4
CASES = ("200:1500", "512:1500", "1000:192", "1000:1000")


def main() -> None:
    carveouts = [0]
    for arg in sys.argv[1:]:
        if arg.startswith("carveouts="):
            carveouts = [int(part) for part in arg.split("=", 1)[1].split(",")]
    case_args = [arg for arg in sys.argv[1:] if "=" not in arg]
    cases = [tuple(int(part) for part in arg.split(":")) for arg in (case_args or CASES)]
    device = torch.device("cuda")
    dtype = torch.bfloat16
    shape = AttentionShape()
    choice = choose_attention_backend("triton", device_type="cuda", dtype="bfloat16", head_size=128,
                                      block_size=16)
    weights = [dict(o=torch.randn(HIDDEN, HIDDEN, dtype=dtype, device=device) * 0.02,
                    gate_up=torch.randn(2 * INTERMEDIATE, HIDDEN, dtype=dtype, device=device) * 0.02,
                    down=torch.randn(HIDDEN, INTERMEDIATE, dtype=dtype, device=device) * 0.02,
                    qkv=torch.randn(QKV, HIDDEN, dtype=dtype, device=device) * 0.02)
               for _ in range(NUM_LAYERS)]
    print(f"{torch.cuda.get_device_name(device)}; {NUM_LAYERS} layers a cycle; times per layer (us)")
    print(f"{'batch':>6} {'ctx':>5} {'carve':>5} {'gemm':>7} {'attn':>7} {'serial':>7} {'halves':>7} "
          f"{'pipelined':>9} {'free':>7} {'pipe/serial':>11}")
    for (batch, context), carveout in ((case, carveout) for case in cases for carveout in carveouts):
        run_case(batch, context, carveout, weights, choice, shape, device, dtype)
    torch._C._set_sm_carveout_experimental(None)


def run_case(batch: int, context: int, carveout: int, weights: list[dict[str, torch.Tensor]], choice: Any,
             shape: AttentionShape, device: torch.device, dtype: torch.dtype) -> None:
    """One (batch, context, carveout) row of the table."""
    torch._C._set_sm_carveout_experimental(carveout or None)
    half = batch // 2
    config = AttentionBackendConfig(device="cuda", dtype="bfloat16", block_size=16, num_layers=NUM_LAYERS,
                                    max_num_reqs=batch, max_num_tokens=batch, max_model_len=4096)
    full = make_decode_buffers(shape, batch_size=batch, context_len=context, num_buffers=NUM_LAYERS,
                               device=device, seed=1)
    halves = [make_decode_buffers(shape, batch_size=half, context_len=context, num_buffers=NUM_LAYERS,
                                  device=device, seed=2 + index) for index in range(2)]
    backends = {key: choice.backend_class(config) for key in ("full", "a", "b")}
    inputs = {"full": full, "a": halves[0], "b": halves[1]}
    rows = {"full": batch, "a": half, "b": half}
    x = {key: torch.randn(rows[key], HIDDEN, dtype=dtype, device=device) for key in rows}

    def gemm(key: str, layer: int) -> None:
        w = weights[layer]
        h = F.linear(x[key], w["o"])
        gu = F.linear(h, w["gate_up"])
        act = F.silu(gu[:, :INTERMEDIATE]) * gu[:, INTERMEDIATE:]
        d = F.linear(act, w["down"])
        F.linear(d, w["qkv"])

    def attn(key: str, layer: int) -> None:
        buffers = inputs[key]
        backends[key].forward(shape.layer(layer), buffers.query, buffers.key, buffers.value,
                              buffers.kv_layer(layer), buffers.metadata)

    side = torch.cuda.Stream(device)

    def fork() -> None:
        side.wait_stream(torch.cuda.current_stream(device))

    def join() -> None:
        torch.cuda.current_stream(device).wait_stream(side)

    def on_side() -> contextlib.AbstractContextManager:
        return torch.cuda.stream(side)

    def cycle_gemm() -> None:
        for layer in range(NUM_LAYERS):
            gemm("full", layer)

    def cycle_attn() -> None:
        for layer in range(NUM_LAYERS):
            attn("full", layer)

    def cycle_serial() -> None:
        for layer in range(NUM_LAYERS):
            gemm("full", layer)
            attn("full", layer)

    def cycle_halves() -> None:
        for layer in range(NUM_LAYERS):
            for key in ("a", "b"):
                gemm(key, layer)
                attn(key, layer)

    def cycle_pipelined() -> None:
        # main stream: half a; side stream: half b. gemm(b, l) runs beside attn(a, l) and
        # gemm(a, l + 1) beside attn(b, l); the gemms alternate, never overlapping each other.
        gemm("a", 0)
        for layer in range(NUM_LAYERS):
            fork()  # the side stream starts after gemm(a, layer)
            attn("a", layer)
            with on_side():
                gemm("b", layer)
                done_gemm_b = torch.cuda.Event()
                done_gemm_b.record(side)
                attn("b", layer)
            torch.cuda.current_stream(device).wait_event(done_gemm_b)
            if layer + 1 < NUM_LAYERS:
                gemm("a", layer + 1)
            join()

    def cycle_free() -> None:
        fork()
        for layer in range(NUM_LAYERS):
            gemm("a", layer)
            attn("a", layer)
        with on_side():
            for layer in range(NUM_LAYERS):
                attn("b", layer)
                gemm("b", layer)
        join()

    results = {}
    with torch.inference_mode():
        for backend_key, buffers in inputs.items():
            backends[backend_key].prepare(buffers.metadata)
        for name, cycle in (("gemm", cycle_gemm), ("attn", cycle_attn), ("serial", cycle_serial),
                            ("halves", cycle_halves), ("pipelined", cycle_pipelined), ("free", cycle_free)):
            cycle()  # compiles and sizes scratch before capture
            torch.cuda.synchronize(device)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                cycle()
            samples = time_op_s(graph.replay, device, num_warmup=3, num_repeats=15)
            samples.sort()
            results[name] = samples[len(samples) // 2] / NUM_LAYERS * 1e6
            del graph
    print(f"{batch:>6} {context:>5} {carveout:>5} {results['gemm']:7.1f} {results['attn']:7.1f} {results['serial']:7.1f} "
          f"{results['halves']:7.1f} {results['pipelined']:9.1f} {results['free']:7.1f} "
          f"{results['pipelined'] / results['serial']:11.3f}", flush=True)
    for mapping in (inputs, backends, x):
        mapping.clear()
    del full, halves
    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
