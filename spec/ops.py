"""Kernel ops: the small fused kernels model layers call between the matmuls.

Attention has its own plugin kind (`tenon.spec.attention`); the other memory-bound pieces of a
decoder layer are ops. Each op has one name and one calling convention, below; an op plugin
registers an `OpSpec` per op it implements, and at start-up the engine picks, per op, the
highest-priority implementation whose capabilities fit (device type, dtype, graph capture).
Tenon's own torch implementations (priority 0) fit everywhere and are the reference a faster
implementation is tested against (`tenon.testing.op_conformance`).

An implementation is a plain function named by the spec's `target`. It may write its outputs
into its inputs' storage where the convention says so, must not synchronise with the host, and,
when it declares `supports_graphs`, must allocate nothing whose size depends on data values.

    rms_norm(x, weight, eps, residual=None)
        x, residual: [num_tokens, hidden] (activation dtype); weight: [hidden].
        Without a residual: returns weight * (x / sqrt(mean(x^2) + eps)), statistics in float32,
        the normalised value cast to the activation dtype before the weight multiply (HF's
        LlamaRMSNorm). With one: s = x + residual (in the activation dtype); returns
        (rms_norm(s), s). May overwrite x and residual.

    silu_and_mul(x)
        x: [num_tokens, 2 * intermediate] = [gate | up]; returns silu(gate) * up,
        [num_tokens, intermediate].

    rotary(positions, heads, cos_cache, signed_sin_cache)
        positions: int64 [num_tokens]; heads: [num_tokens, num_heads, head_size], rows strided,
        rotated IN PLACE; cos_cache, signed_sin_cache: [max_position, rotary_dim] (the tables
        of `tenon.layers.rotary.RotaryEmbedding`: both halves equal, sin's first half negated).
        The first rotary_dim features of each head become
        x * cos + roll(x, rotary_dim // 2) * signed_sin; the rest are unchanged. Returns `heads`.

    linear(x, weight, bias=None)
        x: [num_tokens, in_features] (activation dtype); weight: [out_features, in_features]
        (nn.Linear's layout, x's dtype); bias: [out_features] or None. Returns x @ weight.T
        (+ bias) as a new [num_tokens, out_features] tensor in x's dtype, accumulated in float32
        like torch.nn.functional.linear. x, weight and bias are left as they are. The shape
        decides the kernel, never the data: an implementation may serve only some shapes
        (decode's few tokens, say) and call torch.nn.functional.linear for the rest, but the
        choice must depend on shapes, strides and dtypes alone, so a captured graph replays
        the same kernels; scratch it needs is sized by the shapes too.

    rms_norm_linear(x, norm_weight, eps, weight, bias=None, residual=None)
        linear(rms_norm(x, norm_weight, eps, residual), weight, bias): with a residual returns
        (that output, x + residual), without one the output alone. Layers call it only for
        linears whose quantization method has a dense weight (`LinearMethod.dense_weight`).
        A fused implementation need not round the normalised value to the activation dtype
        before the matmul as the two ops in a row do; it must match them to within that
        rounding. Shape-only choices, as for linear.

    silu_and_mul_linear(x, weight, bias=None)
        linear(silu_and_mul(x), weight, bias), x: [num_tokens, 2 * in_features]. As above.
"""

from __future__ import annotations

OP_NAMES = ("rms_norm", "silu_and_mul", "rotary", "linear", "rms_norm_linear", "silu_and_mul_linear")
