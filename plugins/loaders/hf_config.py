"""config.json read without transformers, for the model types the built-in models serve.

`import transformers` costs seconds at start-up (16.6 s of a 19.6 s start on an H200 host,
where it also pulls in torchvision), yet Llama, Mistral, Qwen2 and Qwen3 read a couple of dozen
plain attributes. For those model types `read_hf_config` builds an `HFConfig` holding what the
transformers config class would hold, set in the same order:

    class field defaults (hf_config_defaults) <- the file's values
        -> the class's __post_init__: head_dim, num_key_value_heads, Qwen's sliding window
        -> PreTrainedConfig's: dtype, rope parameters, the file's other keys, layer_types

Any other model type goes to transformers' `AutoConfig`, imported only then, so third-party
architectures still get their real config class.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tenon.plugins.loaders.hf_config_defaults import (
    BASE_FIELDS,
    DEFAULT_ROPE_THETA,
    LEGACY_LAYER_TYPES,
    ROPE_TYPES_WITH_ORIGINAL_MAX_POSITION,
    ModelTypeDefaults,
    model_type_defaults,
)

# Shape fields that must be positive integers (transformers' strict dataclass checks the type;
# we also refuse zero, which would only fail later, deep inside a layer).
_REQUIRED_SIZES = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
)
_OPTIONAL_SIZES = ("num_key_value_heads", "head_dim")


class HFConfig:
    """A transformers-free stand-in for the `PretrainedConfig` of a known model type: the same
    attributes with the same values, `to_dict()` and `get_text_config()`. `to_transformers()`
    builds the real config for callers that hand it to transformers itself."""

    default_theta = DEFAULT_ROPE_THETA

    def __init__(
        self, attributes: Mapping[str, Any], *, file_values: Mapping[str, Any], name_or_path: str
    ) -> None:
        self.__dict__.update(attributes)
        self._file_values = copy.deepcopy(dict(file_values))
        self._name_or_path = name_or_path

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the config lacks: AttributeError keeps getattr(c, n, default)
        # working as it does on a transformers config.
        model_type = self.__dict__.get("model_type")
        raise AttributeError(f"HFConfig of model_type {model_type!r} has no attribute {name!r}")

    @property
    def rope_scaling(self) -> Any:
        """transformers 5 keeps the legacy name as an alias of `rope_parameters`."""
        return self.rope_parameters

    @property
    def torch_dtype(self) -> Any:
        """The legacy name of `dtype`, as transformers 5 keeps it."""
        return self.dtype

    @property
    def name_or_path(self) -> str:
        return self._name_or_path

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> HFConfig:
        """A decoder-only text model is its own text config, as in transformers."""
        return self

    def to_dict(self) -> dict[str, Any]:
        """The public attributes, JSON-ready (dtype as its name, as transformers writes it)."""
        values = {
            key: copy.deepcopy(value)
            for key, value in vars(self).items()
            if not key.startswith("_")
        }
        if values.get("dtype") is not None:
            values["dtype"] = str(values["dtype"]).removeprefix("torch.")
        return values

    def to_transformers(self) -> Any:
        """The transformers config class's own object, built from the same file values."""
        from transformers import CONFIG_MAPPING

        config_class = CONFIG_MAPPING[self.model_type]
        return config_class.from_dict(
            copy.deepcopy(self._file_values), name_or_path=self._name_or_path
        )

    def __repr__(self) -> str:
        return f"HFConfig({json.dumps(self.to_dict(), sort_keys=True, default=str)})"


def to_transformers_config(config: Any) -> Any:
    """`config` as a transformers `PretrainedConfig` (an `HFConfig` is converted, else as is)."""
    return config.to_transformers() if isinstance(config, HFConfig) else config


def read_config_json(file_path: Path) -> dict[str, Any]:
    try:
        values = json.loads(file_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{file_path} is not valid JSON ({error}); fix or re-download the model's config.json"
        ) from error
    if not isinstance(values, dict):
        raise ValueError(f"{file_path} must hold a JSON object, not {type(values).__name__}")
    return values


def read_hf_config(file_path: Path) -> Any:
    """The config in `file_path` (a config.json): an `HFConfig` for a model type
    `hf_config_defaults` knows, else what transformers' `AutoConfig` makes of the file."""
    file_values = read_config_json(file_path)
    model_type = file_values.get("model_type")
    defaults = model_type_defaults(model_type) if isinstance(model_type, str) else None
    if defaults is None:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(str(file_path), local_files_only=True)
    attributes = config_attributes(file_values, defaults, source=str(file_path))
    return HFConfig(attributes, file_values=file_values, name_or_path=str(file_path))


def config_attributes(
    file_values: Mapping[str, Any], defaults: ModelTypeDefaults, *, source: str
) -> dict[str, Any]:
    """The attributes transformers' config class for `defaults` would set from `file_values`;
    ValueError (naming `source`) for a value no model can be built from."""
    extras = copy.deepcopy(dict(file_values))  # ours to mutate: rope dicts are filled in place
    attributes = {
        name: extras.pop(name, default)
        for name, default in {**BASE_FIELDS, **defaults.fields}.items()
    }
    _check_sizes(attributes, defaults, source)
    # The model class's __post_init__.
    if defaults.head_dim_from_hidden_size and attributes["head_dim"] is None:
        attributes["head_dim"] = attributes["hidden_size"] // attributes["num_attention_heads"]
    if attributes["num_key_value_heads"] is None:
        attributes["num_key_value_heads"] = attributes["num_attention_heads"]
    if defaults.sliding_window_switch:
        _apply_sliding_window_switch(attributes)
    # PreTrainedConfig.__post_init__: dtype, rope, then every other key of the file.
    torch_dtype = extras.pop("torch_dtype", None)
    if attributes["dtype"] is None:
        attributes["dtype"] = torch_dtype
    attributes["dtype"] = _as_torch_dtype(attributes["dtype"], source)
    attributes["rope_parameters"] = _rope_parameters(extras, attributes, source)
    extras.pop("_commit_hash", None)
    attributes.update(extras)
    layer_types = attributes.get("layer_types")
    if layer_types is not None:
        attributes["layer_types"] = [LEGACY_LAYER_TYPES.get(kind, kind) for kind in layer_types]
        if len(layer_types) != attributes["num_hidden_layers"]:
            raise ValueError(
                f"{source}: layer_types has {len(layer_types)} entries but num_hidden_layers is "
                f"{attributes['num_hidden_layers']}; give one layer type per layer"
            )
    return attributes


def _check_sizes(attributes: Mapping[str, Any], defaults: ModelTypeDefaults, source: str) -> None:
    for name in (*_REQUIRED_SIZES, *_OPTIONAL_SIZES):
        value = attributes.get(name)
        if value is None and name in _OPTIONAL_SIZES:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{source}: {name} must be a positive integer, got {value!r}")
    hidden_size, num_heads = attributes["hidden_size"], attributes["num_attention_heads"]
    if defaults.requires_whole_heads and hidden_size % num_heads:
        raise ValueError(
            f"{source}: hidden_size ({hidden_size}) is not a multiple of "
            f"num_attention_heads ({num_heads})"
        )


def _apply_sliding_window_switch(attributes: dict[str, Any]) -> None:
    """Qwen2/Qwen3: the window applies only with `use_sliding_window`, and then only to the
    layers from `max_window_layers` on, unless the file lists `layer_types` itself."""
    if not attributes["use_sliding_window"]:
        attributes["sliding_window"] = None
    if attributes["layer_types"] is None:
        window = attributes["sliding_window"]
        attributes["layer_types"] = [
            "sliding_attention"
            if window is not None and index >= attributes["max_window_layers"]
            else "full_attention"
            for index in range(attributes["num_hidden_layers"])
        ]


def _as_torch_dtype(value: Any, source: str) -> Any:
    """A dtype name as `torch.<name>`, as transformers stores it (None stays None)."""
    if not isinstance(value, str):
        return value
    import torch

    dtype = getattr(torch, value, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f'{source}: dtype {value!r} is not a torch dtype; use e.g. "bfloat16"')
    return dtype


def _rope_parameters(extras: dict[str, Any], attributes: Mapping[str, Any], source: str) -> Any:
    """transformers 5's `rope_parameters`: the legacy `rope_scaling` (which wins) or the file's
    `rope_parameters`, with `rope_theta` and `rope_type` filled in, and
    `original_max_position_embeddings` for the rope types that scale against it.

    Pops the legacy keys from `extras`, as transformers does, so they never become attributes.
    """
    rope_scaling = extras.pop("rope_scaling", None)
    parameters = rope_scaling or attributes["rope_parameters"]
    parameters = parameters if parameters is not None else {}
    if not isinstance(parameters, dict):
        raise ValueError(f"{source}: rope parameters must be a JSON object, got {parameters!r}")
    rope_theta = extras.pop("rope_theta", DEFAULT_ROPE_THETA)
    partial_rotary_factor = extras.pop("partial_rotary_factor", None)
    # Nested per layer type only under a layer type the config class itself declares (Qwen's
    # `layer_types` field); transformers reads a file's `layer_types` only after this point.
    layer_labels = attributes.get("layer_types") or ()
    nested_keys = [key for key in parameters if key in layer_labels]
    groups = [parameters[key] for key in nested_keys] or [parameters]
    for group in groups:
        if group is None:
            continue
        group.setdefault("rope_theta", rope_theta)
        if partial_rotary_factor is not None:
            group.setdefault("partial_rotary_factor", partial_rotary_factor)
        group.setdefault("rope_type", group.get("type", "default"))
        if group["rope_type"] in ROPE_TYPES_WITH_ORIGINAL_MAX_POSITION:
            group.setdefault(
                "original_max_position_embeddings", attributes["max_position_embeddings"]
            )
    return parameters
