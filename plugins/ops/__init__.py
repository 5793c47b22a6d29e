"""Kernel ops (`tenon.spec.ops`): Tenon's reference registrations, and Triton kernels."""
