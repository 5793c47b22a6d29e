"""The attention suite of the kit, run on the built-in backends (proving the kit itself)."""

from __future__ import annotations

import attrs
import pytest
import torch

from tenon.plugins.attention.reference import ReferenceAttentionBackend
from tenon.plugins.attention.registration import tenon_attention_backends
from tenon.plugins.attention.sdpa import SdpaAttentionBackend
from tenon.spec import AttentionCapabilities
from tenon.spec.attention import AttentionBackend
from tenon.testing import AttentionBackendConformance, run_conformance

SPECS = {spec.name: spec for spec in tenon_attention_backends()}


class TestReferenceBackend(AttentionBackendConformance):
    backend_class = ReferenceAttentionBackend
    spec = SPECS["reference"]


class TestTorchSdpaBackend(AttentionBackendConformance):
    backend_class = SdpaAttentionBackend
    spec = SPECS["torch-sdpa"]


class OffByOneSlotBackend(ReferenceAttentionBackend):
    """Writes each token's K/V one slot late: the kind of bug the suite exists to catch."""

    def forward(self, layer, query, key, value, kv_layer, metadata):  # type: ignore[no-untyped-def]
        shifted = attrs.evolve(metadata, slot_mapping=metadata.slot_mapping + 1)
        return super().forward(layer, query, key, value, kv_layer, shifted)


class StrideIgnoringBackend(ReferenceAttentionBackend):
    """Declares strided rows but reads the query's memory as if its rows were dense."""

    accepts_strided_rows = True

    def forward(self, layer, query, key, value, kv_layer, metadata):  # type: ignore[no-untyped-def]
        dense_strides = torch.empty(query.shape).stride()
        misread = query.as_strided(query.shape, dense_strides, query.storage_offset())
        return super().forward(layer, misread, key, value, kv_layer, metadata)


class WindowIgnoringBackend(ReferenceAttentionBackend):
    """Claims sliding windows but attends to everything."""

    def forward(self, layer, query, key, value, kv_layer, metadata):  # type: ignore[no-untyped-def]
        return super().forward(
            attrs.evolve(layer, sliding_window=None), query, key, value, kv_layer, metadata
        )


def test_declared_capabilities_choose_the_parameters() -> None:
    class Suite(AttentionBackendConformance):
        backend_class = ReferenceAttentionBackend
        capabilities = AttentionCapabilities(dtypes=("bfloat16", "float32"), block_sizes=(16,))

    parameters = Suite().parameters()
    assert parameters["dtype"] == ("float32", "bfloat16")
    assert parameters["block_size"] == (16,)
    assert parameters["head_size"] == (64, 128)
    assert Suite().base_dtype() == "float32"


def test_the_suite_fails_a_backend_that_writes_the_wrong_slots() -> None:
    class TestOffByOne(AttentionBackendConformance):
        backend_class = OffByOneSlotBackend

    with pytest.raises(AssertionError) as failure:
        run_conformance(TestOffByOne)
    summary = str(failure.value)
    assert summary.startswith("TestOffByOne: 0 passed, 7 skipped, 19 failed")
    assert "skipped test_strided_rows_match_dense_rows[float32]: the backend does not declare" in summary
    assert "failed test_decode_only_matches_reference[float16]: AssertionError" in summary
    assert "skipped test_spec_names_this_backend: no `spec` set on the suite" in summary


def test_the_suite_fails_a_backend_that_misreads_strided_rows() -> None:
    class TestStrides(AttentionBackendConformance):
        backend_class = StrideIgnoringBackend

    report = run_conformance(TestStrides, check=False)
    # Only the strided-rows test fails: dense rows (test_mixed_batch and the rest) are read right.
    assert [result.name.split("[")[0] for result in report.failed] == ["test_strided_rows_match_dense_rows"] * 3
    assert report.failed[0].detail.startswith("AssertionError")


def test_the_suite_fails_a_backend_that_ignores_declared_windows() -> None:
    class TestWindows(AttentionBackendConformance):
        backend_class = WindowIgnoringBackend
        capabilities = AttentionCapabilities(dtypes=("float32",), supports_sliding_window=True)

    report = run_conformance(TestWindows, check=False)
    assert [result.name for result in report.failed] == ["test_sliding_windows"]
    assert "output differs from the reference backend" in report.failed[0].detail


def test_batch_invariance_is_checked_when_declared() -> None:
    class ReorderingBackend(AttentionBackend):
        """Batch-dependent rounding: adds a tiny term that depends on the batch size."""

        def forward(self, layer, query, key, value, kv_layer, metadata):  # type: ignore[no-untyped-def]
            output = ReferenceAttentionBackend(self.config).forward(
                layer, query, key, value, kv_layer, metadata
            )
            return output + 1e-7 * metadata.num_reqs

    class TestInvariant(AttentionBackendConformance):
        backend_class = ReorderingBackend
        capabilities = AttentionCapabilities(dtypes=("float32",), batch_invariant=True)

    report = run_conformance(TestInvariant, check=False)
    assert [result.name for result in report.failed] == ["test_batch_invariance"]
    assert "declares batch_invariant" in report.failed[0].detail


class Half64Block16Backend(ReferenceAttentionBackend):
    """Refuses anything but what it declares, so the suite must stay inside the declaration."""

    def forward(self, layer, query, key, value, kv_layer, metadata):  # type: ignore[no-untyped-def]
        shape = (layer.head_size, kv_layer.shape[2], query.dtype)
        assert shape == (64, 16, torch.float16), f"called with undeclared {shape}"
        return super().forward(layer, query, key, value, kv_layer, metadata)


def test_the_suite_runs_a_backend_only_with_what_it_declares() -> None:
    class TestHalf64Block16(AttentionBackendConformance):
        backend_class = Half64Block16Backend
        capabilities = AttentionCapabilities(
            dtypes=("float16",), head_sizes=(64,), block_sizes=(16,), device_types=("cpu",)
        )

    report = run_conformance(TestHalf64Block16)
    assert len(report.names("passed")) == 9  # and none failed: run_conformance would raise


def test_a_device_the_backend_does_not_declare_is_refused() -> None:
    class TestCudaOnly(AttentionBackendConformance):
        backend_class = ReferenceAttentionBackend
        capabilities = AttentionCapabilities(device_types=("cuda",))

    with pytest.raises(ValueError, match="set `device` on the suite class"):
        run_conformance(TestCudaOnly)
