"""The one process lifecycle registry: hooks run in their stage order, whatever order
they were registered in, in a forked child and at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # forks and starts interpreters


def _run(script: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_hooks_run_in_stage_order_and_forget_dead_objects() -> None:
    result = _run(
        """
        import gc, os
        from chatdebug._lifecycle import ForkStage, at_fork_in_child, register_fork_safe

        calls = []

        class Owner:
            def __init__(self, name):
                self.name = name
            def _after_fork_in_child(self):
                calls.append(self.name)

        processor = Owner("processor")
        register_fork_safe(processor, ForkStage.PROCESSORS)
        writer = Owner("writer")
        register_fork_safe(writer, ForkStage.WRITERS)
        gone = Owner("gone")
        register_fork_safe(gone, ForkStage.CONNECTIONS)
        del gone
        gc.collect()
        at_fork_in_child(ForkStage.IDS, lambda: calls.append("ids"))
        connections = Owner("connections")
        register_fork_safe(connections, ForkStage.CONNECTIONS)

        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write_end, ",".join(calls).encode())
            os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        print(os.read(read_end, 1000).decode())
        print("parent:" + ",".join(calls))
        """
    )
    assert result.returncode == 0, result.stderr
    child, parent = result.stdout.split()
    assert child == "connections,ids,writer,processor"
    assert parent == "parent:"


def test_exit_hooks_finish_attempts_before_writers_flush() -> None:
    result = _run(
        """
        from chatdebug._lifecycle import ExitStage, at_exit, register_exit_flush

        class Writer:
            def shutdown(self, timeout=None):
                print("writer flushed within", "%.0f" % timeout, flush=True)
                return True

        writer = Writer()
        register_exit_flush(writer)
        at_exit(ExitStage.FINISH_ATTEMPTS, lambda: print("attempts finished", flush=True))
        print("main done", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "main done",
        "attempts finished",
        "writer flushed within 10",
    ]


def test_sigterm_runs_the_exit_hooks_then_ends_the_process_by_sigterm() -> None:
    result = _run(
        """
        import os, signal
        from chatdebug._lifecycle import ExitStage, at_exit, register_exit_flush

        class Writer:
            def shutdown(self, timeout=None):
                print("writer flushed", flush=True)
                return True

        writer = Writer()
        register_exit_flush(writer)
        register_exit_flush(Writer())  # held weakly: gone before the signal, never called
        at_exit(ExitStage.FINISH_ATTEMPTS, lambda: print("attempts finished", flush=True))
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()
        """
    )
    assert result.returncode == -15, (result.returncode, result.stderr)
    assert result.stdout.splitlines() == ["attempts finished", "writer flushed"]
