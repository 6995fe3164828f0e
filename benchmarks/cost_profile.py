"""Where the CPU of one recorded call goes: the calling thread stage by stage, the reaper
thread (which finishes attempts) and the writer, next to the bare SDK call.

The real ``openai`` SDK calls the loopback server of ``loopback_openai.py`` (its own process,
on CPU 1); this process runs on CPU 0 with chatdebug configured to record every call as a
step of one long run (SQLite by default, ``--database-url`` for another store). A bare
client and a recording client alternate in blocks of ``--block`` calls, non-streamed then
streamed, so a slow phase of the machine hits both alike. Measured per call, as CPU time
(``time.thread_time`` and ``/proc/self/task``, so waiting on the network or on the
interpreter lock is not counted):

* the calling thread, bare and recording, and the difference;
* inside it, chatdebug's stages, each timed by a wrapper installed on the internal
  function that does it (a wrapper adds about a microsecond);
* the reaper and writer threads' CPU per recorded call.

On one pinned core every one of these microseconds is the application's. Linux only for
the background threads (elsewhere they are left out). No assertions: it reports::

    .venv/bin/python benchmarks/cost_profile.py [--blocks 20] [--block 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_openai import ANSWER, MESSAGES, MODEL, bare_and_recording

import chatdebug
from chatdebug.exporter import _processor
from chatdebug.instrument import _state
from chatdebug.instrument.capture import _attempt, _transport

# (label, owner, attribute): the stages timed on whichever thread runs them.
STAGES: list[tuple[str, Any, str]] = [
    ("BEFORE THE REQUEST IS SENT (all of it)", _transport, "begin_attempt"),
    ("choose or reserve the step", _transport, "_choose_step"),
    ("read the request (parse, redact, normalize)", _attempt, "read_request"),
    ("open the step (span, start record)", _state.StepState, "open"),
    ("response headers, tee the body", _transport, "_attach"),
    ("each body chunk", _attempt.AttemptCapture, "feed"),
    ("end of body", _attempt.AttemptCapture, "eof"),
    ("caller closes the body", _attempt.AttemptCapture, "closed"),
    ("attempt outcome (parse, normalize, redact)", _attempt.AttemptCapture, "_finish"),
    ("end the step span (attributes, on_end)", _state.StepState, "_finish_span"),
    ("step end record (convert, metrics, queue)", _processor.StoreSpanProcessor, "record_ended"),
]


class StageClock:
    """Per-thread CPU spent inside each wrapped stage (µs), keyed by thread name."""

    def __init__(self) -> None:
        self.spent: dict[tuple[str, str], float] = defaultdict(float)

    def install(self) -> None:
        for label, owner, name in STAGES:
            setattr(owner, name, self._wrap(label, getattr(owner, name)))

    def _wrap(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.thread_time

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return func(*args, **kwargs)
            finally:
                key = (threading.current_thread().name, label)
                self.spent[key] += (clock() - start) * 1e6

        return timed

    def reset(self) -> None:
        self.spent.clear()


def background_cpu() -> dict[str, float]:
    """CPU seconds of every thread but this one, by thread name (Linux)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    me = threading.get_native_id()
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = defaultdict(float)
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tasks:
        if int(tid) == me:
            continue
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[names.get(int(tid), tid)] += (int(fields[11]) + int(fields[12])) / ticks
    return out


def profile(
    kind: str, bare: Any, recording: Any, blocks: int, block: int, clock: StageClock
) -> None:
    """Print the CPU split of ``kind`` calls (non-stream or stream)."""

    def plain(client: Any) -> None:
        reply = client.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert reply.choices[0].message.content == ANSWER

    def streamed(client: Any) -> None:
        parts = [
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            if chunk.choices
        ]
        assert "".join(parts) == ANSWER

    call = plain if kind == "non-stream" else streamed
    for _ in range(block):  # warm-up
        call(bare)
        call(recording)
    chatdebug.flush()
    clock.reset()
    cpu: dict[str, list[float]] = {"bare": [], "recording": []}
    before = background_cpu()
    for number in range(blocks):
        order = ("bare", "recording") if number % 2 else ("recording", "bare")
        for arm in order:
            client = bare if arm == "bare" else recording
            start = time.thread_time()
            for _ in range(block):
                call(client)
            cpu[arm].append((time.thread_time() - start) / block * 1e6)
    chatdebug.flush()
    after = background_cpu()
    calls = blocks * block
    deltas = [r - b for r, b in zip(cpu["recording"], cpu["bare"], strict=True)]
    print(f"\n{kind}: µs of CPU per call, medians over {blocks} blocks of {block} calls")
    print(f"  calling thread, bare SDK           {statistics.median(cpu['bare']):8.0f}")
    print(f"  calling thread, recording          {statistics.median(cpu['recording']):8.0f}")
    print(f"  calling thread, difference         {statistics.median(deltas):+8.0f}")
    order = [label for label, _, _ in STAGES]
    for (thread, label), spent in sorted(
        clock.spent.items(), key=lambda item: (item[0][0] != "MainThread", order.index(item[0][1]))
    ):
        print(f"    {thread:<16} {label:<44} {spent / calls:8.1f}")
    for thread in sorted(after):
        used = (after[thread] - before.get(thread, 0.0)) / calls * 1e6
        if used >= 0.5:
            print(f"  thread {thread:<27} {used:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=20, help="blocks per arm and kind")
    parser.add_argument("--block", type=int, default=50, help="calls per block")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    with bare_and_recording(args.database_url) as (bare, recording):
        clock = StageClock()
        clock.install()
        with chatdebug.run("profile-chat", user_id="profile-user", first_message="profile"):
            for kind in ("non-stream", "stream"):
                profile(kind, bare, recording, args.blocks, args.block, clock)


if __name__ == "__main__":
    main()
