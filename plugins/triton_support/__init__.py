"""What the Triton kernel plugins (`tenon.plugins.ops.triton_kernels`,
`tenon.plugins.attention.triton_paged`) share beyond Triton itself: how their kernels are
launched. Importing this package imports torch only."""
