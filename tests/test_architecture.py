"""The package's shape: no import cycles, no package reaching into another package's
private modules, the layer rules, and the public names of every package.

The graph is read from the source (every ``import`` and ``from … import``, also inside
functions; only ``if TYPE_CHECKING:`` blocks are left out, as they never run), so a
lazy import cannot hide a cycle or a private reach.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import chatdebug

PACKAGE = Path(chatdebug.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_runtime(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if _is_type_checking_block(child):
            continue
        yield child
        yield from _walk_runtime(child)


@cache
def _import_statements(path: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``(module, names)`` per import in ``path``, relative imports resolved (``names`` is
    empty for a plain ``import module``)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    statements: list[tuple[str, tuple[str, ...]]] = []
    for node in _walk_runtime(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            statements.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            statements.append((base, tuple(alias.name for alias in node.names)))
    return tuple(statements)


def _imported_names(path: Path) -> set[str]:
    """Every module name ``path`` imports from, third-party ones included."""
    return {base for base, _names in _import_statements(path)}


@cache
def _imports(module: str) -> frozenset[str]:
    """The chatdebug modules ``module`` imports (a package's ``__init__`` counts as the
    package itself; ``from package import submodule`` counts as the submodule)."""
    modules = _modules()
    found: set[str] = set()
    for base, names in _import_statements(modules[module]):
        if not names:
            found.add(base)
        for name in names:
            submodule = f"{base}.{name}"
            found.add(submodule if submodule in modules else base)
    return frozenset(name for name in found if name in modules and name != module)


def _cycles() -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(_imports(node)):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(_modules()):
        if module not in index:
            visit(module)
    return groups


def test_the_import_graph_has_no_cycles() -> None:
    assert _imports("chatdebug.instrument.capture._attempt"), "the graph reader sees imports"
    assert _cycles() == []


def _private_owner(module: str) -> str | None:
    """The package a private module belongs to (``chatdebug.store`` for
    ``chatdebug.store._sqlite``), or None for a public module."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _private_reaches() -> list[str]:
    bad = []
    for module in sorted(_modules()):
        for target in sorted(_imports(module)):
            owner = _private_owner(target)
            if owner is None or module == owner or module.startswith(owner + "."):
                continue
            bad.append(f"{module} imports {target}")
    return bad


def test_no_module_imports_another_packages_private_modules() -> None:
    # A package's private modules are its own (and its subpackages'); what crosses a
    # package boundary is public or lives in a top-level shared module (chatdebug._x).
    assert _private_owner("chatdebug.store._sqlite") == "chatdebug.store"
    assert _private_owner("chatdebug._spans") == "chatdebug"
    assert _private_owner("chatdebug.store") is None
    assert _private_reaches() == []


LAYERS = {
    # package: packages (and third-party roots) it must never import
    "chatdebug.instrument": (
        "chatdebug.store",
        "chatdebug.exporter",
        "chatdebug.ops",
        "chatdebug.server",
        "chatdebug.cli",
    ),
    "chatdebug.exporter": ("chatdebug.ops", "chatdebug.server", "chatdebug.cli"),
    "chatdebug.store": (
        "opentelemetry",
        "chatdebug.instrument",
        "chatdebug.exporter",
        "chatdebug.ops",
        "chatdebug.server",
        "chatdebug.cli",
        "chatdebug._spans",
    ),
    "chatdebug.ops": (
        "opentelemetry",
        "chatdebug.instrument",
        "chatdebug.exporter",
        "chatdebug.server",
        "chatdebug.cli",
    ),
    "chatdebug.server": ("chatdebug.instrument", "chatdebug.exporter", "chatdebug.cli"),
}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layer_rules(package: str) -> None:
    forbidden = LAYERS[package]
    root = PACKAGE.parent / package.replace(".", "/")
    for path in root.rglob("*.py"):
        bad = {
            name
            for name in _imported_names(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)
        }
        assert not bad, f"{path} imports {bad}"


PUBLIC_NAMES = {
    "chatdebug.cli": {
        "EXIT_FAILURE",
        "EXIT_OK",
        "EXIT_USAGE",
        "CommandError",
        "arg",
        "build_parser",
        "command",
        "main",
        "open_from_args",
    },
    "chatdebug.exporter": {
        "DEFAULT_HANDOFF",
        "BackgroundWriter",
        "Pricer",
        "PricesError",
        "ReplayReport",
        "SpillJournal",
        "StoreSpanExporter",
        "StoreSpanProcessor",
        "aggregate_run_summary",
        "load_prices_file",
        "replay_spill",
        "repriced_metadata",
        "slot_paths",
        "truncate_label",
        "validate_prices",
    },
    "chatdebug.instrument": {
        "AsyncTransport",
        "EnablementSource",
        "InstrumentSettings",
        "Redactor",
        "RunHandle",
        "StepHandle",
        "Transport",
        "async_httpx2_client",
        "async_httpx_client",
        "bind_context",
        "httpx2_client",
        "httpx_client",
        "install",
        "instrument_aiohttp",
        "instrument_http",
        "instrument_httpx",
        "run",
        "settings",
        "step",
        "traced_run",
        "uninstrument_aiohttp",
        "uninstrument_http",
        "uninstrument_httpx",
    },
    "chatdebug.instrument.capture": {
        "AsyncTransport",
        "Transport",
        "async_httpx2_client",
        "async_httpx_client",
        "compile_model_urls",
        "drain",
        "httpx2_client",
        "httpx_client",
        "instrument_aiohttp",
        "instrument_http",
        "instrument_httpx",
        "is_aiohttp_instrumented",
        "is_httpx_instrumented",
        "is_model_call",
        "uninstrument_aiohttp",
        "uninstrument_http",
        "uninstrument_httpx",
    },
    "chatdebug.instrument.normalize": {
        "MAX_STREAM_TEXT_BYTES",
        "MAX_TEXT_LENGTH",
        "USAGE_CLOSED_EARLY",
        "USAGE_NOT_REQUESTED",
        "USAGE_NOT_SENT",
        "USAGE_UNAVAILABLE",
        "AnthropicMessagesCodec",
        "Codec",
        "Detection",
        "GeminiAuxCodec",
        "GeminiCodec",
        "GenericCodec",
        "NormalizedResponse",
        "OpenAIChatCodec",
        "OpenAIResponsesCodec",
        "SSEEvent",
        "SSEParser",
        "StreamAssembler",
        "bound_text",
        "detect",
        "is_retryable_status",
    },
    "chatdebug.instrument.redact": {
        "DEFAULT_REDACTOR",
        "EXTRA_VALUES_DIAGNOSTIC",
        "NESTING_DIAGNOSTIC",
        "NOT_JSON_DIAGNOSTIC",
        "REDACTED",
        "REDACTED_URL",
        "HeadersInput",
        "Redactor",
    },
    "chatdebug.ops": {
        "DEFAULT_PURGE_INTERVAL",
        "DEFAULT_STALE_INTERVAL",
        "DEFAULT_STALE_THRESHOLD",
        "PurgeOutcome",
        "PurgeTick",
        "Purger",
        "StaleFinalizer",
        "Ticker",
    },
    "chatdebug.server": {
        "EventHub",
        "Readiness",
        "ServerState",
        "create_app",
        "secure_h11_protocol",
    },
    "chatdebug.store": {
        "CLEAR",
        "DEFAULT_LIST_LIMIT",
        "DEFAULT_RETENTION_DAYS",
        "MAX_RETENTION_DAYS",
        "MAX_SEARCH_TERMS",
        "PURGE_BATCH_SIZE",
        "BulkWriter",
        "BulkWrites",
        "ChangeEvent",
        "ChangeFeed",
        "ChatTotals",
        "Clear",
        "EncodedJSON",
        "FinalizeResult",
        "NewRun",
        "NewStep",
        "PostgresStore",
        "PurgeResult",
        "Run",
        "RunFilter",
        "RunFinalized",
        "RunNotFound",
        "RunPosition",
        "RunUpdate",
        "SQLiteStore",
        "Step",
        "StepUpdate",
        "Store",
        "StoreConfigError",
        "StoreError",
        "StoreUnavailable",
        "bulk_writer",
        "database_location",
        "encode_json",
        "mask_password",
        "open_change_feed",
        "open_store",
        "search_terms",
    },
}


def _packages() -> list[str]:
    return sorted(name for name, path in _modules().items() if path.name == "__init__.py")


@pytest.mark.parametrize("name", _packages())
def test_every_package_declares_its_public_names(name: str) -> None:
    package = importlib.import_module(name)
    declared = getattr(package, "__all__", None)
    assert isinstance(declared, list), f"{name} has no __all__"
    assert len(set(declared)) == len(declared), f"{name}.__all__ repeats a name"
    for public in declared:
        assert hasattr(package, public), f"{name}.__all__ names {public}, which is missing"
    # Classes and functions of our own that a package exposes are declared too.
    defined = {
        attr
        for attr, value in vars(package).items()
        if not attr.startswith("_")
        and not inspect.ismodule(value)
        and str(getattr(value, "__module__", "")).startswith("chatdebug")
    }
    missing = defined - set(declared) - {"__version__"}
    assert not missing, f"{name} has public names missing from __all__: {missing}"
    if name != "chatdebug":  # the top-level names are asserted in test_public_api
        assert set(declared) == PUBLIC_NAMES[name]
