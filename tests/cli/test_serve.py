"""``chatdebug serve`` as a real process on both backends: a purge tick seen through
``/metrics``, health routes, signals, startup errors and the addresses it refuses."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from chatdebug.cli import main
from chatdebug.store import open_store
from tests.ops.serve_process import ServeProcess, run_serve, wait_for
from tests.ops.support import NOW, runs_aged
from tests.store.support import FakeClock, count
from tests.support import require_tool


@pytest.mark.slow
def test_a_purge_tick_is_scraped_from_a_real_serve_process(database_url: str) -> None:
    clock = FakeClock(NOW)
    store = open_store(database_url, clock=clock)
    try:
        store.set_retention_days(30)
        old = runs_aged(store, clock, days=40, count=3, steps=2)
        kept = runs_aged(store, clock, days=2, count=2, steps=1)
    finally:
        store.close()

    with ServeProcess(database_url, "--purge-interval", "1s", "--no-finalize") as serve:
        wait_for(lambda: serve.removed("chat_debug_runs") == 3, what="the first tick")
        assert serve.removed("chat_debug_steps") == 6
        assert serve.iterations("true") >= 1
        assert serve.iterations("false") == 0
        last = serve.value("chatdebug_purge_last_success_timestamp_seconds")
        assert abs(time.time() - last) < 120
        assert serve.value("chatdebug_purge_retention_seconds") == 30 * 86400
        stale = "chatdebug_stale_rows_finalized_total"
        assert serve.value(stale, record_type="chat_debug_runs") == 0  # exposed, as zero
        text = serve.metrics_text()
        status, ready = serve.get("/readyz")
        assert (status, ready.strip()) == (200, "ready")
        openmetrics = serve.get("/metrics", accept="application/openmetrics-text; version=1.0.0")
        assert openmetrics[0] == 200 and openmetrics[1].rstrip().endswith("# EOF")
        assert serve.stop() == 0

    assert count(database_url, "chat_debug_runs") == 2
    assert count(database_url, "chat_debug_steps") == 2
    with open_store(database_url) as check:
        assert all(check.get_run(r.id) is None for r in old)
        assert all(check.get_run(r.id) is not None for r in kept)
    promtool = require_tool("promtool")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_serve_cleanly(sqlite_url: str, sig: signal.Signals) -> None:
    serve = ServeProcess(sqlite_url, "--purge-interval", "1s", "--stale-interval", "1s")
    with serve:
        wait_for(lambda: serve.iterations("true") >= 1, what="a purge tick")
        assert serve.stop(sig) == 0
        assert "Traceback" not in serve.log()
        assert "stopped" in serve.log()


@pytest.mark.slow
def test_healthz_and_readyz_need_no_token(sqlite_url: str) -> None:
    with ServeProcess(sqlite_url, "--token", "r" * 24, "--admin-token", "a" * 24) as serve:
        assert serve.get("/healthz") == (200, "ok\n")
        assert serve.get("/readyz")[0] == 200
        assert serve.get("/metrics")[0] == 200


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.slow
def test_a_bad_url_is_one_line_and_exit_2() -> None:
    result = run_serve("--database-url", "mysql://nowhere/db")
    assert "mysql" in _one_line_error(result)
    assert result.returncode == 2


@pytest.mark.slow
def test_an_unreachable_database_is_one_line_and_exit_1() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    result = run_serve("--database-url", f"postgresql://postgres@127.0.0.1:{port}/test")
    line = _one_line_error(result)
    assert result.returncode == 1
    assert "127.0.0.1" in line


@pytest.mark.slow
def test_a_port_in_use_is_one_line(sqlite_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_serve("--database-url", sqlite_url, "--listen", f"127.0.0.1:{port}")
    line = _one_line_error(result)
    assert f"127.0.0.1:{port}" in line and "cannot listen" in line


@pytest.mark.slow
def test_a_non_loopback_listen_needs_both_tokens(sqlite_url: str) -> None:
    result = run_serve("--database-url", sqlite_url, "--listen", "0.0.0.0:0", "--token", "x" * 24)
    line = _one_line_error(result)
    assert result.returncode == 2
    assert "non-loopback" in line and "--admin-token" in line


@pytest.mark.slow
def test_a_non_loopback_listen_with_tokens_is_logged_as_such(sqlite_url: str) -> None:
    serve = ServeProcess(
        sqlite_url,
        "--token",
        "r" * 24,
        "--admin-token",
        "a" * 24,
        "--no-purge",
        "--no-finalize",
    )
    with serve:
        assert "(loopback)" in serve.log()
    result = run_serve("--database-url", sqlite_url, "--listen", "bad-listen-value")
    assert _one_line_error(result).startswith("chatdebug")
    assert result.returncode == 2


@pytest.mark.slow
def test_serve_refuses_a_bad_duration(sqlite_url: str) -> None:
    result = run_serve("--database-url", sqlite_url, "--purge-interval", "soon")
    assert "soon" in _one_line_error(result)
    assert result.returncode == 2


@pytest.mark.slow
def test_serve_without_its_extra_says_what_to_install(sqlite_url: str) -> None:
    # The extra's packages made unimportable, as in an installation without it.
    script = (
        "import sys; sys.modules['uvicorn'] = None; sys.modules['starlette'] = None\n"
        "from chatdebug.cli import main\n"
        f"sys.exit(main(['serve', '--database-url', {sqlite_url!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "chatdebug serve needs Starlette and uvicorn: pip install 'chatdebug[serve]'"
    )


@pytest.mark.parametrize("tokens", [[], ["--token", "r" * 24], ["--admin-token", "a" * 24]])
def test_serve_refuses_a_public_address_without_both_tokens(
    sqlite_url: str,
    tokens: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHATDEBUG_API_TOKEN", raising=False)
    monkeypatch.delenv("CHATDEBUG_ADMIN_TOKEN", raising=False)
    argv = ["--database-url", sqlite_url, "serve", "--listen", "0.0.0.0:0", *tokens]
    assert main(argv) == 2
    assert "refusing to listen on non-loopback" in capsys.readouterr().err
