"""Instructions per recorded call, counted by valgrind's callgrind: a figure that does not
move with the machine's speed or with what else runs on it, for comparing two versions of
the code where timings on a shared machine cannot tell a few percent apart.

How the threads interleave (batch sizes, pauses) still moves the count by a few percent
from run to run; differences smaller than that need several runs of each version.

The loopback server of ``loopback_openai.py`` runs in its own process (not counted). Each
measurement is a fresh Python process under ``valgrind --tool=callgrind`` that configures
chatdebug (SQLite in a temporary directory), opens one run and makes ``--calls`` calls
with the real ``openai`` SDK, bare or through ``chatdebug.httpx2_client()``; every thread
of the process is counted (the caller, the reaper, the writer and SQLite). The same is
done with ``--base-calls`` calls, and the difference divided by the difference in calls is
the cost of one call without the start-up and shut-down. No assertions: it reports::

    .venv/bin/python benchmarks/instructions.py [--kinds non-stream stream] [--calls 250]
        [--arms recording]

Needs ``valgrind`` on the PATH; each process runs about 50 times slower than natively
(a few minutes in all; the processes run side by side, one per CPU).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_openai import MESSAGES, MODEL, loopback_server

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def workload(base_url: str, kind: str, arm: str, calls: int) -> None:
    """The measured process: ``calls`` calls of ``kind`` in one run, bare or recording."""
    import openai

    import chatdebug

    chatdebug.configure("sqlite:///" + os.path.join(tempfile.mkdtemp(), "bench.db"), enabled=True)
    settings = {"base_url": base_url, "api_key": "sk-bench", "max_retries": 0}
    client = (
        openai.OpenAI(**settings)
        if arm == "bare"
        else openai.OpenAI(**settings, http_client=chatdebug.httpx2_client())
    )
    with chatdebug.run(chat_id="instructions", user_id="bench", first_message="count"):
        for _ in range(calls):
            if kind == "stream":
                for _chunk in client.chat.completions.create(
                    model=MODEL, messages=MESSAGES, stream=True
                ):
                    pass
            else:
                client.chat.completions.create(model=MODEL, messages=MESSAGES)
    chatdebug.shutdown()


def counted(base_url: str, kind: str, arm: str, calls: int) -> int:
    """Instructions of one whole process making ``calls`` calls."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--workload",
            base_url,
            kind,
            arm,
            str(calls),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--workload":
        workload(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", default=["non-stream", "stream"])
    parser.add_argument("--calls", type=int, default=250, help="calls of the long process")
    parser.add_argument("--base-calls", type=int, default=50, help="calls of the short one")
    parser.add_argument("--arms", nargs="+", default=["bare", "recording"])
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    extra = args.calls - args.base_calls
    if extra <= 0:
        raise SystemExit("--calls must be larger than --base-calls")
    with loopback_server() as base_url, ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        # Counts do not depend on what else runs: the processes run side by side.
        jobs = {
            (kind, arm, calls): pool.submit(counted, base_url, kind, arm, calls)
            for kind in args.kinds
            for arm in args.arms
            for calls in (args.calls, args.base_calls)
        }
        for kind in args.kinds:
            per_call = {
                arm: (
                    jobs[kind, arm, args.calls].result() - jobs[kind, arm, args.base_calls].result()
                )
                / extra
                for arm in args.arms
            }
            shown = ", ".join(f"{arm} {count / 1e6:6.2f} M" for arm, count in per_call.items())
            if "bare" in per_call and "recording" in per_call:
                bare, recording = per_call["bare"], per_call["recording"]
                shown += (
                    f", difference {(recording - bare) / 1e6:+6.2f} M ({recording / bare - 1:+.0%})"
                )
            print(f"{kind:<10} instructions per call: {shown}")


if __name__ == "__main__":
    main()
