"""An example Tenon plugin package: the `example-sdpa` attention backend."""
