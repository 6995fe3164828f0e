"""The public surface of the package (the import rules are in test_architecture.py)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import chatdebug

PACKAGE = Path(chatdebug.__file__).parent

FIXED_NAMES = {
    "configure",
    "run",
    "traced_run",
    "step",
    "Transport",
    "AsyncTransport",
    "httpx_client",
    "async_httpx_client",
    "httpx2_client",
    "async_httpx2_client",
    "flush",
    "shutdown",
    "instrument_httpx",
    "uninstrument_httpx",
    "instrument_aiohttp",
    "uninstrument_aiohttp",
    "instrument_http",
    "uninstrument_http",
}


def test_all_is_sorted_and_complete() -> None:
    assert chatdebug.__all__ == sorted(chatdebug.__all__)
    public = {name for name in dir(chatdebug) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(chatdebug, name))}
    assert set(chatdebug.__all__) - {"__version__"} == public - modules
    assert FIXED_NAMES <= set(chatdebug.__all__)


def test_configure_signature_is_as_documented() -> None:
    params = inspect.signature(chatdebug.configure).parameters
    assert list(params)[:1] == ["database_url"]
    assert params["enabled"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["tracer_provider"].kind is inspect.Parameter.KEYWORD_ONLY


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # resolve relative imports against the file's package
                package = path.relative_to(PACKAGE.parent).parent.parts
                base = ".".join(package[: len(package) - node.level + 1]) + (
                    f".{base}" if base else ""
                )
            names.add(base)
    return names


def test_sdks_are_not_imported_by_the_library() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name == "demo.py" and path.parent.name == "cli":
            continue  # the demo imports openai lazily, with a clear error when missing
        bad = {n for n in _imports(path) if n.split(".")[0] in ("openai", "anthropic")}
        assert not bad, f"{path} imports {bad}"
