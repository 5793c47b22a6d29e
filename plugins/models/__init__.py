"""Model architectures of the Llama family (Llama, Mistral, Qwen2, Qwen3) as Tenon modules.

`decoder` holds the layers they share, `causal_lm` the `ModelArchitecture` and the checkpoint
name mapping; one thin module per architecture names its traits; `registration` publishes them.
"""
