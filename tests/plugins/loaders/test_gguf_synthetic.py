"""GGUF loading on tiny files written here with gguf.GGUFWriter, the way llama.cpp writes them."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch

from tenon.plugins.loaders.gguf_loader import GGUFLoader, resolve_gguf_file
from tenon.spec.loader import ModelSource
from tests.plugins.loaders.recording_model import RecordingModel
from tests.plugins.loaders.test_gguf_names import llama_cpp_permute

HIDDEN_SIZE = 16
NUM_HEADS = 4
NUM_KV_HEADS = 2
HEAD_DIM = 4
INTERMEDIATE_SIZE = 24
NUM_LAYERS = 2
VOCAB = [f"tok{i}" for i in range(10)]

# (GGUF name in block N, HF name in layer N, HF shape)
LAYER_TENSORS = [
    ("attn_norm.weight", "input_layernorm.weight", (HIDDEN_SIZE,)),
    ("attn_q.weight", "self_attn.q_proj.weight", (NUM_HEADS * HEAD_DIM, HIDDEN_SIZE)),
    ("attn_k.weight", "self_attn.k_proj.weight", (NUM_KV_HEADS * HEAD_DIM, HIDDEN_SIZE)),
    ("attn_v.weight", "self_attn.v_proj.weight", (NUM_KV_HEADS * HEAD_DIM, HIDDEN_SIZE)),
    ("attn_output.weight", "self_attn.o_proj.weight", (HIDDEN_SIZE, NUM_HEADS * HEAD_DIM)),
    ("ffn_norm.weight", "post_attention_layernorm.weight", (HIDDEN_SIZE,)),
    ("ffn_gate.weight", "mlp.gate_proj.weight", (INTERMEDIATE_SIZE, HIDDEN_SIZE)),
    ("ffn_up.weight", "mlp.up_proj.weight", (INTERMEDIATE_SIZE, HIDDEN_SIZE)),
    ("ffn_down.weight", "mlp.down_proj.weight", (HIDDEN_SIZE, INTERMEDIATE_SIZE)),
]
BIAS_TENSORS = [
    ("attn_q.bias", "self_attn.q_proj.bias", (NUM_HEADS * HEAD_DIM,)),
    ("attn_k.bias", "self_attn.k_proj.bias", (NUM_KV_HEADS * HEAD_DIM,)),
    ("attn_v.bias", "self_attn.v_proj.bias", (NUM_KV_HEADS * HEAD_DIM,)),
]
QK_NORM_TENSORS = [
    ("attn_q_norm.weight", "self_attn.q_norm.weight", (HEAD_DIM,)),
    ("attn_k_norm.weight", "self_attn.k_norm.weight", (HEAD_DIM,)),
]


def hf_checkpoint(architecture: str, untied: bool, with_bias: bool) -> dict[str, np.ndarray]:
    """(GGUF name -> (HF name, HF-layout values)) with random values."""
    rng = np.random.default_rng(7)
    layer_tensors = list(LAYER_TENSORS)
    if with_bias:
        layer_tensors += BIAS_TENSORS
    if architecture == "qwen3":
        layer_tensors += QK_NORM_TENSORS
    table = [
        ("token_embd.weight", "model.embed_tokens.weight", (len(VOCAB), HIDDEN_SIZE)),
        ("output_norm.weight", "model.norm.weight", (HIDDEN_SIZE,)),
    ]
    if untied:
        table.append(("output.weight", "lm_head.weight", (len(VOCAB), HIDDEN_SIZE)))
    for layer in range(NUM_LAYERS):
        table += [
            (f"blk.{layer}.{g}", f"model.layers.{layer}.{h}", shape)
            for g, h, shape in layer_tensors
        ]
    return {g: (h, rng.standard_normal(shape).astype(np.float32)) for g, h, shape in table}


def write_gguf(
    path: Path, architecture: str, checkpoint: dict, extra_tensors: dict | None = None
) -> Path:
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_block_count(NUM_LAYERS)
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN_SIZE)
    writer.add_feed_forward_length(INTERMEDIATE_SIZE)
    writer.add_head_count(NUM_HEADS)
    writer.add_head_count_kv(NUM_KV_HEADS)
    writer.add_rope_freq_base(5000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    if architecture == "qwen3":
        writer.add_key_length(HEAD_DIM)
    else:
        writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_token_list(VOCAB)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    for gguf_name, (_, values) in checkpoint.items():
        if architecture == "llama" and (".attn_q." in gguf_name or ".attn_k." in gguf_name):
            num_heads = NUM_HEADS if ".attn_q." in gguf_name else NUM_KV_HEADS
            values = llama_cpp_permute(torch.from_numpy(values), num_heads).numpy()
        if gguf_name.endswith("ffn_down.weight"):
            values = values.astype(np.float16)  # an F16 tensor among the F32 ones
        writer.add_tensor(gguf_name, np.ascontiguousarray(values))
    for gguf_name, values in (extra_tensors or {}).items():
        writer.add_tensor(gguf_name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


CASES = [("llama", False, False), ("llama", True, True), ("qwen3", False, False)]


@pytest.mark.parametrize(
    ("architecture", "untied", "with_bias"), CASES, ids=["llama-tied", "llama-untied-bias", "qwen3"]
)
def test_weights_come_back_unpermuted_in_hf_layout(
    tmp_path: Path, architecture: str, untied: bool, with_bias: bool
) -> None:
    checkpoint = hf_checkpoint(architecture, untied, with_bias)
    path = write_gguf(tmp_path / "tiny.gguf", architecture, checkpoint)
    loader = GGUFLoader(cache_dir=tmp_path / "cache")
    source = ModelSource(path=path)
    assert loader.can_load(source)

    config = loader.load_config(source)
    model = RecordingModel({hf: values.shape for hf, values in checkpoint.values()})
    loader.load_weights(model, source, config)

    assert set(model.received) == {hf for hf, _ in checkpoint.values()}
    for gguf_name, (hf_name, values) in checkpoint.items():
        expected = torch.from_numpy(values)
        if gguf_name.endswith("ffn_down.weight"):
            expected = expected.half().float()
        received = model.received[hf_name]
        assert received.dtype == torch.float32, hf_name
        assert torch.equal(received, expected), hf_name


@pytest.mark.parametrize(
    ("architecture", "untied", "with_bias"), CASES, ids=["llama-tied", "llama-untied-bias", "qwen3"]
)
def test_config_from_metadata(
    tmp_path: Path, architecture: str, untied: bool, with_bias: bool
) -> None:
    path = write_gguf(
        tmp_path / "tiny.gguf", architecture, hf_checkpoint(architecture, untied, with_bias)
    )
    config = GGUFLoader(cache_dir=tmp_path / "cache").load_config(ModelSource(path=path))
    expected_class = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}[architecture]
    assert config.architectures == [expected_class]
    assert config.model_type == architecture
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers) == (16, 24, 2)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (4, 2, 4)
    assert config.vocab_size == len(VOCAB)  # from the token list: no vocab_size key written
    assert config.max_position_embeddings == 64
    assert config.rope_parameters["rope_theta"] == 5000.0
    assert config.rms_norm_eps == pytest.approx(1e-5)
    assert config.tie_word_embeddings is (not untied)
    assert (config.bos_token_id, config.eos_token_id) == (1, 2)
    assert config.attention_bias is with_bias


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    checkpoint = hf_checkpoint("llama", untied=False, with_bias=False)
    path = write_gguf(tmp_path / "tiny.gguf", "llama", checkpoint)
    shapes = {hf: values.shape for hf, values in checkpoint.values()}
    shapes["model.layers.0.extra.weight"] = (3,)
    loader = GGUFLoader(cache_dir=tmp_path / "cache")
    source = ModelSource(path=path)
    with pytest.raises(ValueError, match=r"model\.layers\.0\.extra\.weight"):
        loader.load_weights(RecordingModel(shapes), source, loader.load_config(source))


def test_unmapped_tensors_are_refused(tmp_path: Path) -> None:
    checkpoint = hf_checkpoint("llama", untied=False, with_bias=False)
    extra = {"rope_freqs.weight": np.ones(HEAD_DIM // 2, dtype=np.float32)}
    path = write_gguf(tmp_path / "tiny.gguf", "llama", checkpoint, extra_tensors=extra)
    loader = GGUFLoader(cache_dir=tmp_path / "cache")
    source = ModelSource(path=path)
    model = RecordingModel({hf: values.shape for hf, values in checkpoint.values()})
    with pytest.raises(ValueError, match="rope_freqs.weight"):
        loader.load_weights(model, source, loader.load_config(source))


def test_unsupported_architecture_is_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "tiny.gguf", "gpt2", {})
    with pytest.raises(ValueError, match="'gpt2' is not supported"):
        GGUFLoader(cache_dir=tmp_path / "cache").load_config(ModelSource(path=path))


def test_source_resolution(tmp_path: Path) -> None:
    loader = GGUFLoader(cache_dir=tmp_path / "cache")
    directory = tmp_path / "model"
    directory.mkdir()
    assert not loader.can_load(ModelSource(path=directory))
    first = write_gguf(directory / "a.gguf", "llama", {})
    assert loader.can_load(ModelSource(path=directory))
    assert resolve_gguf_file(directory) == first
    assert resolve_gguf_file(first) == first
    write_gguf(directory / "b.gguf", "llama", {})
    assert not loader.can_load(ModelSource(path=directory))
    with pytest.raises(ValueError, match="several GGUF files"):
        resolve_gguf_file(directory)
    (tmp_path / "notes.txt").write_text("x")
    assert not loader.can_load(ModelSource(path=tmp_path / "notes.txt"))
