"""Does the card hold its matmul rate under sustained load? The offline limit model divides FLOPs
by the rate of one 8192^3 bf16 matmul timed over ten short repeats (`gpu_limits`); an offline run
keeps the tensor cores busy for tens of seconds, and a power-capped card may lower its clocks.
For the limit's square matmul and for llama-3.1-8b's four layer matmuls at 16384 rows (a full
prefill step), this prints the burst rate (median of ten after three warm-ups, as the limit
measures it) and the sustained rate (back-to-back for `seconds`, timed over the second half),
with the SM clock and power nvidia-smi reports while the sustained run is on the device.

    python3 benchmarks/diagnostics/matmul_sustained.py [seconds]
"""

from __future__ import annotations

import subprocess
import sys
import threading

import torch

from tenon.bench.gpu_limits import time_op_s, time_sustained_s

# (name, rows, in features, out features)
SHAPES = (
    ("square 8192 (the limit's)", 8192, 8192, 8192),
    ("qkv 16384x4096->6144", 16384, 4096, 6144),
    ("o 16384x4096->4096", 16384, 4096, 4096),
    ("gate_up 16384x4096->28672", 16384, 4096, 28672),
    ("down 16384x14336->4096", 16384, 14336, 4096),
)


def smi() -> str:
    query = "--query-gpu=clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active"
    try:
        return subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"nvidia-smi failed: {error}"


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    device = torch.device("cuda")
    generator = torch.Generator(device=device).manual_seed(0)
    print(f"{torch.cuda.get_device_name(device)}; idle: {smi()}")
    print(f"{'shape':<28} {'burst TFLOP/s':>14} {'sustained':>10} {'ratio':>6}  nvidia-smi during the sustained run")
    for name, rows, in_features, out_features in SHAPES:
        # activations: [rows, in_features]; weight: [out_features, in_features]
        activations = torch.randn(rows, in_features, dtype=torch.bfloat16, device=device, generator=generator)
        weight = torch.randn(out_features, in_features, dtype=torch.bfloat16, device=device,
                             generator=generator) * in_features**-0.5
        output = torch.empty(rows, out_features, dtype=torch.bfloat16, device=device)
        flops = 2.0 * rows * in_features * out_features

        def op(activations: torch.Tensor = activations, weight: torch.Tensor = weight,
               output: torch.Tensor = output) -> None:
            torch.matmul(activations, weight.t(), out=output)

        burst_s = sorted(time_op_s(op, device, num_warmup=3, num_repeats=10))
        burst_rate = flops / burst_s[len(burst_s) // 2]
        # nvidia-smi from another thread while the run is on the device (the host blocks in
        # the launches once the queue is full, so it cannot ask from here)
        during: list[str] = []
        probe = threading.Timer(seconds * 0.6, lambda during=during: during.append(smi()))
        probe.start()
        num_timed, elapsed_s = time_sustained_s(op, device, duration_s=seconds)
        probe.join()
        sustained_rate = flops * num_timed / elapsed_s
        print(f"{name:<28} {burst_rate / 1e12:14.1f} {sustained_rate / 1e12:10.1f} "
              f"{sustained_rate / burst_rate:6.3f}  {during[0] if during else '-'}")
        del activations, weight, output
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
