"""The external path, end to end: the example packages in tests/thirdparty/ installed with pip,
found through their entry points, quarantined or loaded, and shown by `tenon doctor`.

Install them first:
    pip install --no-deps --no-build-isolation tests/thirdparty/tenon-example-good \
        tests/thirdparty/tenon-example-broken-import tests/thirdparty/tenon-example-future-api
"""

from __future__ import annotations

import importlib.metadata
import json
import math

import pytest

from tenon.cli.main import main
from tenon.plugin_host import PluginStatus, load_plugins
from tenon.spec import API_VERSION, PluginKind, Requirements, supported_range

EXAMPLES = ("tenon-example-good", "tenon-example-broken-import", "tenon-example-future-api")


def _missing_examples() -> list[str]:
    missing = []
    for name in EXAMPLES:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


pytestmark = pytest.mark.skipif(
    bool(_missing_examples()),
    reason=(
        f"example plugin packages not installed ({', '.join(_missing_examples())}); install with "
        "`pip install --no-deps --no-build-isolation tests/thirdparty/<package>`"
    ),
)

FUTURE_REASON = (
    f"written for tenon.spec API 9.0, but this Tenon provides API {API_VERSION} and loads "
    f"plugins for API {supported_range()}"
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("TENON_PLUGINS", "TENON_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)


def _records(host):
    return {record.name: record for record in host.plugins}


def test_report_shows_each_example_plugin():
    host = load_plugins(environ={})
    records = _records(host)

    good = records["example-good"]
    assert (good.origin.distribution, good.origin.version, good.status) == (
        "tenon-example-good",
        "0.3.1",
        PluginStatus.LOADED,
    )
    (sdpa,) = [e for e in host.specs(PluginKind.ATTENTION_BACKEND) if e.spec.name == "example-sdpa"]
    assert sdpa.origin == good.origin

    broken = records["example-broken-import"]
    assert (broken.origin.distribution, broken.origin.version) == (
        "tenon-example-broken-import",
        "0.2.0",
    )
    assert (broken.status, broken.phase, broken.error) == (
        PluginStatus.QUARANTINED,
        "import",
        "ModuleNotFoundError: No module named 'tenon_example_missing_kernels'",
    )
    assert "tenon_example_broken_import/plugin.py" in broken.traceback

    future = records["example-future-api"]
    assert (future.origin.distribution, future.origin.version, future.status) == (
        "tenon-example-future-api",
        "9.0.0",
        PluginStatus.LOADED,
    )
    (quarantined,) = [q for q in host.quarantined_specs if q.origin.plugin == "example-future-api"]
    assert (quarantined.kind, quarantined.name, quarantined.reason) == (
        PluginKind.MODEL,
        "example-future",
        FUTURE_REASON,
    )
    assert all(e.spec.name != "example-future" for e in host.specs(PluginKind.MODEL))


def test_good_backend_is_selectable_by_name():
    host = load_plugins(environ={})
    backend_cls, decision = host.select(
        PluginKind.ATTENTION_BACKEND,
        Requirements(device_type="cpu", dtype="float32", head_size=8),
        requested="example-sdpa",
    )
    assert decision.chosen_verdict.reasons == (
        "taken: requested (--attention-backend=example-sdpa)",
    )
    assert backend_cls.__module__ == "tenon_example_good.sdpa"
    assert backend_cls.__name__ == "SdpaAttentionBackend"
    # Its priority is below the built-in reference: installing it changes no default.
    assert (
        next(
            e.spec.priority
            for e in host.specs(PluginKind.ATTENTION_BACKEND)
            if e.spec.name == "example-sdpa"
        )
        == -10
    )


def test_allowlist_loads_only_the_named_example():
    host = load_plugins(environ={"TENON_PLUGINS": "example-good"})
    records = _records(host)
    assert records["example-good"].status is PluginStatus.LOADED
    assert records["example-broken-import"].status is PluginStatus.SKIPPED_BY_ALLOWLIST
    assert records["example-future-api"].status is PluginStatus.SKIPPED_BY_ALLOWLIST
    assert records["cpu-platform"].status is PluginStatus.LOADED
    assert host.quarantined_plugins == ()
    assert host.errors == ()


def test_allowlist_with_a_typo_is_an_error():
    host = load_plugins(environ={"TENON_PLUGINS": "example-goood"})
    (error,) = host.errors
    assert error.startswith("TENON_PLUGINS names example-goood, which no installed plugin provides")
    assert "example-good" in error.split("available plugin names: ")[1]


def test_autoload_off_skips_every_example_but_keeps_tenons_own():
    host = load_plugins(environ={"TENON_DISABLE_PLUGIN_AUTOLOAD": "1"})
    records = _records(host)
    for name in ("example-good", "example-broken-import", "example-future-api"):
        assert records[name].status is PluginStatus.SKIPPED_AUTOLOAD_DISABLED
    assert records["cpu-platform"].status is PluginStatus.LOADED
    assert all(e.origin.distribution == "tenon" for k in PluginKind for e in host.specs(k))


def test_doctor_shows_all_three(capsys):
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()

    def row(first_cell):
        (found,) = [line.split() for line in lines if line.split()[:1] == [first_cell]]
        return found

    assert row("example-good") == ["example-good", "tenon-example-good", "0.3.1", "loaded"]
    assert row("example-broken-import")[:5] == [
        "example-broken-import",
        "tenon-example-broken-import",
        "0.2.0",
        "quarantined",
        "import:",
    ]
    assert " ".join(row("example-broken-import")[5:]) == (
        "ModuleNotFoundError: No module named 'tenon_example_missing_kernels'"
    )
    assert row("example-future-api") == [
        "example-future-api",
        "tenon-example-future-api",
        "9.0.0",
        "loaded",
    ]
    (quarantine_line,) = [line for line in lines if "example-future " in line]
    assert quarantine_line.split(None, 3) == [
        "model",
        "example-future",
        "example-future-api",
        FUTURE_REASON,
    ]


def test_doctor_json_and_verbose(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    statuses = {p["name"]: p["status"] for p in report["plugins"]}
    assert statuses["example-good"] == "loaded"
    assert statuses["example-broken-import"] == "quarantined"
    assert [q["name"] for q in report["quarantined_specs"]].count("example-future") == 1

    assert main(["doctor", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "  traceback of example-broken-import:" in out
    assert "    ModuleNotFoundError: No module named 'tenon_example_missing_kernels'" in out


def test_doctor_respects_the_allowlist(capsys, monkeypatch):
    monkeypatch.setenv("TENON_PLUGINS", "example-good,example-nope")
    assert main(["doctor"]) == 1  # an unknown allowlisted name would stop the engine
    out = capsys.readouterr().out
    assert "skipped-by-allowlist" in out
    assert "Errors (an engine would not start)" in out
    assert "TENON_PLUGINS names example-nope" in out


def _reference_attention(query, keys, values, query_len, scale):
    """Plain loops: query [q, h, d] at the last q positions of keys/values [s, kv_h, d]."""
    import torch

    num_heads, num_kv_heads = query.shape[1], keys.shape[1]
    seq_len = keys.shape[0]
    out = torch.zeros_like(query)
    for row in range(query_len):
        position = seq_len - query_len + row
        for head in range(num_heads):
            kv_head = head // (num_heads // num_kv_heads)
            scores = [
                float((query[row, head] * keys[j, kv_head]).sum()) * scale
                for j in range(position + 1)
            ]
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            total = sum(weights)
            for j, weight in enumerate(weights):
                out[row, head] += weight / total * values[j, kv_head]
    return out


def test_example_sdpa_matches_a_plain_reference_on_a_paged_layout():
    import torch
    from tenon_example_good.sdpa import SdpaAttentionBackend

    from tenon.spec.attention import AttentionBackendConfig, AttentionLayer, AttentionMetadata

    generator = torch.Generator().manual_seed(0)
    block_size, num_blocks, num_layers = 4, 10, 2
    num_heads, num_kv_heads, head_size = 4, 2, 8
    seq_lens, query_lens = [6, 9, 7], [6, 1, 3]  # prefill, decode, chunked prefill
    block_table = torch.zeros(4, 3, dtype=torch.int32)  # max_num_reqs 4: row 3 is unused
    free_blocks = torch.randperm(num_blocks - 1, generator=generator) + 1
    kv_cache = torch.zeros(num_blocks, num_layers, 2, block_size, num_kv_heads, head_size)
    kv_layer = kv_cache[:, 1]  # a strided view, as the runner hands it over
    full_keys, full_values, slots, queries = [], [], [], []
    next_block = 0
    for seq_len, query_len in zip(seq_lens, query_lens, strict=True):
        request = len(full_keys)
        num_request_blocks = -(-seq_len // block_size)
        block_table[request, :num_request_blocks] = free_blocks[
            next_block : next_block + num_request_blocks
        ].int()
        next_block += num_request_blocks
        keys = torch.randn(seq_len, num_kv_heads, head_size, generator=generator)
        values = torch.randn(seq_len, num_kv_heads, head_size, generator=generator)
        for token in range(seq_len):
            slot = int(block_table[request, token // block_size]) * block_size + token % block_size
            if token < seq_len - query_len:  # cached by an earlier step
                kv_layer[slot // block_size, 0, slot % block_size] = keys[token]
                kv_layer[slot // block_size, 1, slot % block_size] = values[token]
            else:
                slots.append(slot)
        full_keys.append(keys)
        full_values.append(values)
        queries.append(torch.randn(query_len, num_heads, head_size, generator=generator))
    num_actual_tokens, num_padding = sum(query_lens), 2
    # query/key/value: [num_tokens (padded), heads, head_size]
    query = torch.cat([*queries, torch.randn(num_padding, num_heads, head_size)])
    key = torch.cat(
        [k[-q:] for k, q in zip(full_keys, query_lens, strict=True)]
        + [torch.randn(num_padding, num_kv_heads, head_size)]
    )
    value = torch.cat(
        [v[-q:] for v, q in zip(full_values, query_lens, strict=True)]
        + [torch.randn(num_padding, num_kv_heads, head_size)]
    )
    metadata = AttentionMetadata(
        query_start_loc=torch.tensor([0, 6, 7, 10], dtype=torch.int32),
        seq_lens=torch.tensor(seq_lens, dtype=torch.int32),
        block_table=block_table[:3],
        slot_mapping=torch.tensor(slots + [0, 1], dtype=torch.int64),  # padding: block 0
        max_query_len=6,
        max_seq_len=9,
        num_reqs=3,
        num_actual_tokens=num_actual_tokens,
    )
    layer = AttentionLayer(
        layer_index=1,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_size=head_size,
        scale=head_size**-0.5,
    )
    backend = SdpaAttentionBackend(
        AttentionBackendConfig(
            device="cpu",
            dtype="float32",
            block_size=block_size,
            num_layers=num_layers,
            max_num_reqs=4,
            max_num_tokens=12,
            max_model_len=12,
        )
    )
    output = backend.forward(layer, query, key, value, kv_layer, metadata)

    assert output.shape == (num_actual_tokens + num_padding, num_heads, head_size)
    expected = torch.cat(
        [
            _reference_attention(q, k, v, q.shape[0], layer.scale)
            for q, k, v in zip(queries, full_keys, full_values, strict=True)
        ]
    )
    torch.testing.assert_close(output[:num_actual_tokens], expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(output[num_actual_tokens:], torch.zeros(num_padding, num_heads, head_size))
    # This step's K/V landed in the layer's blocks, and the other layer was not touched.
    for token, slot in enumerate(slots):
        assert torch.equal(kv_layer[slot // block_size, 0, slot % block_size], key[token])
        assert torch.equal(kv_layer[slot // block_size, 1, slot % block_size], value[token])
    assert torch.equal(kv_cache[:, 0], torch.zeros_like(kv_cache[:, 0]))
