"""tenon_cuda: the NVIDIA platform package, registered only through its entry point."""
