"""Built-in quantization schemes: "none" (unquantized weights, a plain matmul)."""
