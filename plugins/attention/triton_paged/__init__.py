"""Paged attention in Triton: one KV write kernel, a split-KV decode kernel, a varlen prefill
kernel. Vendor-neutral (CUDA and ROCm); the CPU runs the kernels only under the Triton
interpreter, in tests. The backend lives in `backend.py`; this package imports nothing."""
