"""Triton implementations of Tenon's kernel ops (`tenon.spec.ops`), one module per op.

Each module holds the kernel and a wrapper with the op's exact signature; the wrappers are the
targets `tenon.plugins.ops.triton_registration` names. They synchronise with nothing and
allocate only what the input shapes fix, so a CUDA graph can capture them. Importing a module
imports triton; registration does not.
"""
