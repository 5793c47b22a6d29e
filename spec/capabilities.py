"""Typed, frozen capability records: what each kind of plugin declares it can do.

A field that is None means "any". Deprecated keyword names still accepted (with a warning) are
listed in `tenon.spec.deprecation.DEPRECATIONS`. Each record answers `unmet(requirements)` with the reasons it
cannot serve (empty: it can). Plugins construct these in their registration hooks; nothing here
imports torch.
"""

from __future__ import annotations

import attrs

from tenon.spec.deprecation import DEPRECATIONS, renamed_fields
from tenon.spec.requirements import Requirements, check_flag, check_member


@renamed_fields(*DEPRECATIONS["PlatformCapabilities"])
@attrs.frozen(kw_only=True)
class PlatformCapabilities:
    device_type: str
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "float16")
    supports_graphs: bool = False
    collectives_backend: str = "gloo"

    def unmet(self, requirements: Requirements) -> tuple[str, ...]:
        return (
            check_member("device type", requirements.device_type, (self.device_type,))
            + check_member("dtype", requirements.dtype, self.dtypes)
            + check_flag("graph capture", requirements.needs_graphs, self.supports_graphs)
        )


@attrs.frozen(kw_only=True)
class ModelCapabilities:
    architectures: tuple[str, ...]  # HF `architectures` names this implementation serves
    dtypes: tuple[str, ...] | None = None
    quantizations: tuple[str, ...] | None = None  # None: any scheme the quant slot provides

    def unmet(self, requirements: Requirements) -> tuple[str, ...]:
        return (
            check_member("architecture", requirements.architecture, self.architectures)
            + check_member("dtype", requirements.dtype, self.dtypes)
            + check_member("quantization", requirements.quantization, self.quantizations)
        )


@renamed_fields(*DEPRECATIONS["AttentionCapabilities"])
@attrs.frozen(kw_only=True)
class AttentionCapabilities:
    device_types: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    head_sizes: tuple[int, ...] | None = None
    block_sizes: tuple[int, ...] | None = None
    supports_graphs: bool = False
    batch_invariant: bool = False
    supports_sliding_window: bool = False

    def unmet(self, requirements: Requirements) -> tuple[str, ...]:
        return (
            check_member("device type", requirements.device_type, self.device_types)
            + check_member("dtype", requirements.dtype, self.dtypes)
            + check_member("head size", requirements.head_size, self.head_sizes)
            + check_member("block size", requirements.block_size, self.block_sizes)
            + check_flag("graph capture", requirements.needs_graphs, self.supports_graphs)
            + check_flag(
                "batch invariance", requirements.needs_batch_invariance, self.batch_invariant
            )
            + check_flag(
                "sliding window", requirements.sliding_window, self.supports_sliding_window
            )
        )


@attrs.frozen(kw_only=True)
class QuantCapabilities:
    methods: tuple[str, ...]  # checkpoint quantization methods served; "none" = unquantized
    device_types: tuple[str, ...] | None = None
    activation_dtypes: tuple[str, ...] | None = None

    def unmet(self, requirements: Requirements) -> tuple[str, ...]:
        return (
            check_member("quantization", requirements.quantization or "none", self.methods)
            + check_member("device type", requirements.device_type, self.device_types)
            + check_member("dtype", requirements.dtype, self.activation_dtypes)
        )


@attrs.frozen(kw_only=True)
class DrafterCapabilities:
    methods: tuple[str, ...]  # --speculative-config "method" values served
    device_types: tuple[str, ...] | None = None

    def unmet(self, requirements: Requirements) -> tuple[str, ...]:
        return check_member(
            "speculative method", requirements.speculative_method, self.methods
        ) + check_member("device type", requirements.device_type, self.device_types)


@attrs.frozen(kw_only=True)
class KVTierCapabilities:
    medium: str  # "cpu", "disk", "remote"
    persistent: bool = False  # survives an engine restart
    kv_layouts: tuple[str, ...] | None = None

    def unmet(self, requirements: Requirements) -> tuple[str, ...]:
        return check_member("medium", requirements.kv_medium, (self.medium,))


@attrs.frozen(kw_only=True)
class KVConnectorCapabilities:
    roles: tuple[str, ...] = ("kv_producer", "kv_consumer", "kv_both")
    device_types: tuple[str, ...] | None = None

    def unmet(self, requirements: Requirements) -> tuple[str, ...]:
        return check_member("kv_role", requirements.kv_role, self.roles) + check_member(
            "device type", requirements.device_type, self.device_types
        )


@attrs.frozen(kw_only=True)
class LoaderCapabilities:
    formats: tuple[str, ...]  # --load-format values served

    def unmet(self, requirements: Requirements) -> tuple[str, ...]:
        return check_member("load format", requirements.load_format, self.formats)


@attrs.frozen(kw_only=True)
class OpCapabilities:
    op: str  # one of tenon.spec.ops.OP_NAMES
    device_types: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    supports_graphs: bool = False

    def unmet(self, requirements: Requirements) -> tuple[str, ...]:
        return (
            check_member("op", requirements.op, (self.op,))
            + check_member("device type", requirements.device_type, self.device_types)
            + check_member("dtype", requirements.dtype, self.dtypes)
            + check_flag("graph capture", requirements.needs_graphs, self.supports_graphs)
        )
