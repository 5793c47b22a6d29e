"""Every ```python block in docs/**/*.md runs, so the documentation cannot rot.

Blocks of one page run in order. A block preceded by `<!-- file: NAME.py -->` is that file of
the reader's project: it runs as module NAME (importable by the page's later blocks, as after a
`pip install -e .`). Other blocks run as one script. `<!-- skip -->` before a block skips it
(used sparingly, for what cannot run here). Modules a page created are removed after it.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import attrs
import pytest

from tenon.spec import PluginKind

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
DIRECTIVE = re.compile(r"<!--\s*(skip|file:\s*([A-Za-z_][A-Za-z0-9_]*)\.py)\s*-->")
# The page documenting each extension point.
PLUGIN_PAGES = {
    PluginKind.PLATFORM: "platform.md",
    PluginKind.MODEL: "model.md",
    PluginKind.ATTENTION_BACKEND: "attention-backend.md",
    PluginKind.QUANT_SCHEME: "quantization-scheme.md",
    PluginKind.MODEL_LOADER: "model-loader.md",
    PluginKind.DRAFTER: "drafter.md",
    PluginKind.KV_TIER: "kv-tier.md",
    PluginKind.KV_CONNECTOR: "kv-connector.md",
    PluginKind.OP: "op.md",
}


@attrs.frozen(kw_only=True)
class CodeBlock:
    line: int  # 1-based line of the first code line
    code: str
    module: str | None  # run as this module (a file of the reader's project), else as script
    skipped: bool


def python_blocks(text: str) -> list[CodeBlock]:
    blocks: list[CodeBlock] = []
    lines = text.splitlines()
    directive: re.Match[str] | None = None
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if stripped.startswith("```"):
            fence_end = next(
                (j for j in range(index + 1, len(lines)) if lines[j].strip() == "```"), None
            )
            assert fence_end is not None, f"unclosed code fence at line {index + 1}"
            if stripped == "```python":
                blocks.append(
                    CodeBlock(
                        line=index + 2,
                        code="\n".join(lines[index + 1 : fence_end]),
                        module=directive.group(2) if directive else None,
                        skipped=bool(directive and directive.group(1) == "skip"),
                    )
                )
            index, directive = fence_end + 1, None
            continue
        if stripped:
            directive = DIRECTIVE.fullmatch(stripped)
        index += 1
    return blocks


def run_page(page: Path) -> None:
    created: list[str] = []
    script = types.ModuleType(f"tenon_docs_{page.stem.replace('-', '_')}")
    try:
        for block in python_blocks(page.read_text()):
            if block.skipped:
                continue
            code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
            if block.module is None:
                exec(code, script.__dict__)
                continue
            assert block.module not in sys.modules, f"{block.module} would shadow a real module"
            module = types.ModuleType(block.module)
            module.__file__ = f"{page}#{block.module}.py"
            sys.modules[block.module] = module
            created.append(block.module)
            exec(code, module.__dict__)
    finally:
        for name in created:
            sys.modules.pop(name, None)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENON_PLUGINS", "TENON_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_code_runs(page: Path) -> None:
    run_page(page)


@pytest.mark.parametrize("kind", list(PLUGIN_PAGES), ids=[k.name.lower() for k in PLUGIN_PAGES])
def test_every_extension_point_has_a_page_with_running_code(kind: PluginKind) -> None:
    page = DOCS / "plugins" / PLUGIN_PAGES[kind]
    text = page.read_text()
    assert kind.value in text, f"{page.name} never names its hook {kind.value}()"
    assert any(not block.skipped for block in python_blocks(text)), f"{page.name} runs no code"


def test_block_parser_reads_directives() -> None:
    text = (
        "<!-- file: my_mod.py -->\n```python\nX = 1\n```\n\n"
        "<!-- skip -->\n```python\nraise SystemExit\n```\n"
        "```toml\n[x]\n```\n```python\nimport my_mod\n```\n"
    )
    assert python_blocks(text) == [
        CodeBlock(line=3, code="X = 1", module="my_mod", skipped=False),
        CodeBlock(line=8, code="raise SystemExit", module=None, skipped=True),
        CodeBlock(line=14, code="import my_mod", module=None, skipped=False),
    ]


def test_architecture_page_names_every_core_package() -> None:
    text = (DOCS / "architecture.md").read_text()
    core = Path(__file__).resolve().parents[2] / "core"
    packages = sorted(p.parent.name for p in core.glob("*/__init__.py"))
    missing = [name for name in packages if f"`tenon.{name}`" not in text]
    assert missing == [], f"docs/architecture.md does not describe tenon.{', tenon.'.join(missing)}"
