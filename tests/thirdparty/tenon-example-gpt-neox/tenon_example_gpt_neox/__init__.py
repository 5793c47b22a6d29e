"""An example Tenon plugin package: GPTNeoXForCausalLM (Pythia, GPT-NeoX-20B)."""
