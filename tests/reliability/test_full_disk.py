"""The SQLite store, or the spill journal, on a file system that fills up or is read-only
(a small tmpfs mounted for the test): the application goes on without an exception, the
failure is logged once, counted, shown by ``/readyz`` and a metric, and writing resumes
by itself once space is freed or the file system is writable again, losing nothing."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatdebug.store import open_store
from tests.fakes.tcp_proxy import TCPProxy
from tests.ops.serve_process import ServeProcess

from ._driver import (
    AppProcess,
    RunsOutcome,
    StartApp,
    assert_all_written,
    completed_counts,
    figure,
    wait_until,
)

STEPS = 1


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of its own, unmounted afterwards."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs (needs root): {done.stderr.strip()}"
        if os.environ.get("CHATDEBUG_REQUIRE_TOOLS", "") not in ("", "0", "false"):
            pytest.fail(message + " [CHATDEBUG_REQUIRE_TOOLS=1]", pytrace=False)
        pytest.skip(message)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; the file."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    for size in (4096, 512, 1):  # the last few bytes too
        with filler.open("ab", buffering=0) as out:
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                pass
    return filler


def _until_metric(app: AppProcess, check: Callable[[dict[str, object]], bool]) -> bool:
    return wait_until(lambda: check(app.request("metrics", cmd="metrics")), timeout=60) is not None


@pytest.mark.slow
def test_sqlite_store_on_a_full_file_system(
    small_fs: Path,
    start_app: StartApp,
    record_property: Callable[[str, object], None],
) -> None:
    url = f"sqlite:///{small_fs / 'chatdebug.db'}"
    app = start_app(url)
    runs = 400
    app.send(cmd="runs", count=runs, steps=STEPS, threads=4, prefix="full", rate=20.0)
    app.wait_progress(25, timeout=60)
    with ServeProcess(url, "--no-purge", "--no-finalize") as serve:
        assert serve.get("/readyz")[0] == 200
        filler = fill(small_fs)
        full_at = time.time()
        assert _until_metric(app, lambda m: m["storage_writable"]["store"] == 0), app.log()
        status, reason = serve.get("/readyz")
        during = app.request("metrics", cmd="metrics")
        before = completed_counts(url, "full")
        time.sleep(3)  # traffic goes on against the full disk
        filler.unlink()
        freed_at = time.time()
        outcome = RunsOutcome(app.wait_for("runs_done", timeout=120)["runs"])
        written_at = wait_until(lambda: completed_counts(url, "full") == (runs, runs), timeout=60)
        ready_again = serve.get("/readyz")[0]
    report = app.request("metrics", cmd="metrics")
    logged = app.log().count("cannot write its SQLite store")
    figure(
        record_property,
        "sqlite_store_disk_full",
        runs=runs,
        written_when_full=f"{before[0]}/{runs}",
        readyz_when_full=f"{status} {reason.strip()}",
        seconds_full=freed_at - full_at,
        seconds_to_write_all_after_freeing=(written_at or float("nan")) - freed_at,
        caller_exceptions=len(outcome.errors),
        dropped=sum(report["dropped"].values()),
        failures_counted=report["storage_failures"]["store/disk_full"],
    )

    assert outcome.errors == []
    assert status == 503 and "full file system" in reason
    assert during["storage_failures"]["store/disk_full"] == 1
    assert written_at is not None
    assert_all_written(outcome, STEPS, url, "full")
    assert ready_again == 200
    assert report["storage_writable"]["store"] == 1
    assert report["storage_failures"]["store/disk_full"] == 1  # one episode
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    assert logged == 1


@pytest.mark.slow
def test_spill_journal_on_a_full_file_system(
    small_fs: Path,
    pg_url: str,
    pg_proxy: tuple[TCPProxy, str],
    start_app: StartApp,
    record_property: Callable[[str, object], None],
) -> None:
    proxy, proxied_url = pg_proxy
    journal = small_fs / "spill.db"
    app = start_app(proxied_url, configure={"spill_path": str(journal), "queue_size": 20_000})
    runs = 600
    app.send(cmd="runs", count=runs, steps=STEPS, threads=4, prefix="jfull", rate=20.0)
    app.wait_progress(25, timeout=60)
    proxy.stop()  # from here on everything goes to the journal
    assert _until_metric(app, lambda m: m["journal_events"] > 0)
    with ServeProcess(pg_url, "--no-purge", "--no-finalize", "--spill-path", str(journal)) as serve:
        filler = fill(small_fs)
        assert _until_metric(app, lambda m: m["storage_writable"]["journal"] == 0), app.log()
        status, reason = serve.get("/readyz")
        during = app.request("metrics", cmd="metrics")
        time.sleep(3)  # events wait in memory meanwhile
        filler.unlink()
        assert _until_metric(
            app,
            lambda m: m["storage_writable"]["journal"] == 1 and m["spilled"] > during["spilled"],
        )
        ready_again = serve.get("/readyz")[0]
    outcome = RunsOutcome(app.wait_for("runs_done", timeout=120)["runs"])
    proxy.start()
    written_at = wait_until(lambda: completed_counts(pg_url, "jfull") == (runs, runs), timeout=90)
    flushed = app.request("flushed", cmd="flush", timeout=30)
    report = app.request("metrics", cmd="metrics")
    logged = app.log().count("cannot write its spill journal")
    figure(
        record_property,
        "spill_journal_disk_full",
        runs=runs,
        readyz_when_full=f"{status} {reason.strip()}",
        spilled=report["spilled"],
        replayed=report["replayed"],
        caller_exceptions=len(outcome.errors),
        dropped=sum(report["dropped"].values()),
        failures_counted=report["storage_failures"]["journal/disk_full"],
    )

    assert outcome.errors == []
    assert status == 503 and "full file system" in reason
    assert ready_again == 200
    assert during["storage_failures"]["journal/disk_full"] == 1
    assert written_at is not None
    assert_all_written(outcome, STEPS, pg_url, "jfull")
    assert flushed["ok"]
    assert report["storage_writable"]["journal"] == 1
    assert report["storage_failures"]["journal/disk_full"] == 1
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    assert report["journal_events"] == 0
    assert logged == 1


@pytest.mark.slow
def test_spill_journal_on_a_read_only_file_system(
    small_fs: Path,
    pg_url: str,
    pg_proxy: tuple[TCPProxy, str],
    start_app: StartApp,
    record_property: Callable[[str, object], None],
) -> None:
    proxy, proxied_url = pg_proxy
    # Read-only before anything is there (a file system remounted read-only under open
    # files cannot be made here: the kernel refuses while they are open for writing).
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    journal = small_fs / "spill.db"
    app = start_app(proxied_url, configure={"spill_path": str(journal), "queue_size": 20_000})
    runs = 200
    app.send(cmd="runs", count=runs, steps=STEPS, threads=4, prefix="ro", rate=20.0)
    app.wait_progress(25, timeout=60)
    proxy.stop()
    assert _until_metric(app, lambda m: m["storage_writable"]["journal"] == 0), app.log()
    during = app.request("metrics", cmd="metrics")
    subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert _until_metric(app, lambda m: m["storage_writable"]["journal"] == 1 and m["spilled"] > 0)
    outcome = RunsOutcome(app.wait_for("runs_done", timeout=120)["runs"])
    proxy.start()
    written_at = wait_until(lambda: completed_counts(pg_url, "ro") == (runs, runs), timeout=90)
    flushed = app.request("flushed", cmd="flush", timeout=30)
    report = app.request("metrics", cmd="metrics")
    figure(
        record_property,
        "spill_journal_read_only",
        runs=runs,
        spilled=report["spilled"],
        caller_exceptions=len(outcome.errors),
        dropped=sum(report["dropped"].values()),
        failures_counted=report["storage_failures"]["journal/read_only"],
    )

    assert outcome.errors == []
    assert during["storage_failures"]["journal/read_only"] == 1
    assert written_at is not None and flushed["ok"]
    assert_all_written(outcome, STEPS, pg_url, "ro")
    assert report["storage_writable"]["journal"] == 1
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    assert app.log().count("cannot write its spill journal") == 1


@pytest.mark.slow
def test_sqlite_store_on_a_read_only_file_system(
    small_fs: Path,
    start_app: StartApp,
    record_property: Callable[[str, object], None],
) -> None:
    url = f"sqlite:///{small_fs / 'chatdebug.db'}"
    open_store(url).close()  # a store that exists, its files closed
    # Read-only before the application starts: the kernel refuses to remount a file
    # system read-only while a process has files open on it for writing, and the store
    # keeps its file open.
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    app = start_app(url, migrated=False)  # configure() does not raise
    runs = 200
    with ServeProcess(url, "--no-purge", "--no-finalize") as serve:
        app.send(cmd="runs", count=runs, steps=STEPS, threads=4, prefix="rostore", rate=20.0)
        app.wait_progress(25, timeout=60)
        assert _until_metric(app, lambda m: m["storage_writable"]["store"] == 0), app.log()
        status, reason = serve.get("/readyz")
        during = app.request("metrics", cmd="metrics")
        time.sleep(3)  # traffic goes on against the read-only store
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
        writable_at = time.time()
        outcome = RunsOutcome(app.wait_for("runs_done", timeout=120)["runs"])
        written_at = wait_until(
            lambda: completed_counts(url, "rostore") == (runs, runs), timeout=60
        )
        ready_again = wait_until(lambda: serve.get("/readyz")[0] == 200, timeout=30)
    report = app.request("metrics", cmd="metrics")
    logged = app.log().count("cannot write its SQLite store")
    figure(
        record_property,
        "sqlite_store_read_only",
        runs=runs,
        readyz_when_read_only=f"{status} {reason.strip()}",
        seconds_to_write_all_after_remount=(written_at or float("nan")) - writable_at,
        caller_exceptions=len(outcome.errors),
        dropped=sum(report["dropped"].values()),
        failures_counted=report["storage_failures"]["store/read_only"],
    )

    assert outcome.errors == []
    assert status == 503 and "read-only file system" in reason, reason
    assert during["storage_failures"]["store/read_only"] == 1
    assert during["storage_writable"]["store"] == 0
    assert written_at is not None
    assert_all_written(outcome, STEPS, url, "rostore")
    assert ready_again is not None
    assert report["storage_writable"]["store"] == 1
    assert report["storage_failures"]["store/read_only"] == 1  # one episode
    assert sum(report["dropped"].values()) == 0, report["dropped"]
    assert logged == 1
