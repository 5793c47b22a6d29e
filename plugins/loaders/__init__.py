"""Built-in model loaders: safetensors directories, GGUF files, and dummy (random) weights.

Each loader implements `tenon.spec.loader.ModelLoader`; `registration` publishes them through the
`tenon_model_loaders` hook.
"""
