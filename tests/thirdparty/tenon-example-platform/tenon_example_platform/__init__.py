"""An example Tenon plugin package: the `example-cpu` platform."""
