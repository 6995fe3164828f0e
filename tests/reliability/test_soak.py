"""A shortened soak: ``benchmarks/soak_bench.py`` for a minute on SQLite (the full
30-minute runs on both stores are benchmarks; see README "Reliability"). An application
records a mix of completions, streams, tool calls and rejected calls while ``chatdebug
serve`` purges and finalizes what the benchmark seeds: every run is accounted for, and
threads and file descriptors do not grow. Its memory figures are printed, not judged:
a minute is mostly warm-up."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ._driver import ROOT, figure


@pytest.mark.slow
def test_a_short_soak_accounts_for_every_run(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak_bench.py"), "--store", "sqlite",
         "--minutes", "1", "--sample", "10", "--warmup", "0.25", "--rate", "8",
         "--purge-interval", "5", "--seed-interval", "10", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    figure(
        record_property,
        "short_soak_sqlite",
        runs=result["runs"],
        rss_mib_first_last=result["rss_mib_first_last"],
        rss_slope_kib_per_min=result["rss_slope_kib_per_min"],
        traced_slope_kib_per_min=result["traced_slope_kib_per_min"],
        threads=result["threads_min_max"],
        fds=result["fds_min_max"],
    )

    assert result["runs"] > 200 and result["caller_unexpected_exceptions"] == 0
    assert result["runs_completed"] + result["runs_error"] == result["runs"]
    assert result["runs_error"] > 0  # the rejected calls were made, and ended their runs
    # Every run the application made is stored, finished; nothing was dropped.
    assert result["runs_stored"] == result["runs"]
    assert result["runs_left_in_progress"] == 0
    assert sum(result["events_dropped"].values()) == 0
    # serve purged every aged run and finalized every idle one, and stopped cleanly.
    assert result["aged_seeded"] > 0 and result["aged_purged"] == result["aged_seeded"]
    assert result["aged_left"] == 0
    assert result["idle_seeded"] > 0 and result["idle_finalized"] == result["idle_seeded"]
    assert result["idle_left_open"] == 0
    assert result["serve_exit"] == [0]
    # No leak of threads or descriptors from one sample to the next.
    threads, fds = result["threads_min_max"], result["fds_min_max"]
    assert threads[1] - threads[0] <= 3, result["samples"]
    assert fds[1] - fds[0] <= 16, result["samples"]
