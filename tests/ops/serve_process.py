"""A real ``chatdebug serve`` process for tests: started on a free loopback port, probed
over HTTP, its ``/metrics`` parsed, stopped with a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["ServeProcess", "free_port", "run_serve", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}: {last!r}")


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATDEBUG_")}
    env["PYTHONPATH"] = str(ROOT)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra or {})
    return env


def run_serve(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``chatdebug serve`` that is expected to stop by itself (startup errors)."""
    return subprocess.run(
        [sys.executable, "-m", "chatdebug", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(None),
        check=False,
    )


class ServeProcess:
    """``chatdebug serve --database-url URL --listen 127.0.0.1:<free port> *args``."""

    def __init__(self, url: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "chatdebug", "serve", "--database-url", url,
                "--listen", f"127.0.0.1:{self.port}", *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_env(env),
        )  # fmt: skip
        try:
            wait_for(self._healthy, 60, "serve to answer /healthz")
        except AssertionError:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"serve did not start:\n{self.log()}") from None

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log()}")
        return self.get("/healthz")[0] == 200

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def get(self, path: str, accept: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path)
        if accept:
            request.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def metrics_text(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, body
        return body

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        values = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for s in family.samples:
                values[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return values

    def value(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        found = self.samples()
        assert key in found, f"{name}{labels} not exposed"
        return found[key]

    def wait_for(self, condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        """:func:`wait_for`, with this process's log in the failure message."""
        try:
            return wait_for(condition, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- serve log ---\n{self.log()[-8000:]}") from None

    def removed(self, record_type: str) -> float:
        return self.value("chatdebug_purge_records_removed_total", record_type=record_type)

    def iterations(self, success: str) -> float:
        return self.value("chatdebug_purge_iteration_duration_seconds_count", success=success)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"serve did not stop on {sig}:\n{self.log()}") from None
        finally:
            self._log.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.stop()
        Path(self._log.name).unlink(missing_ok=True)
