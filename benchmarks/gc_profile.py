"""What recording costs in cyclic garbage collection, next to the bare SDK call.

The real ``openai`` SDK calls the loopback server of ``loopback_openai.py`` (its own
process, on CPU 1; this process on CPU 0), one arm at a time in separate blocks: ``bare``
(the SDK's own client) and ``recording`` (every call a step of one long run, persisted to
SQLite or ``--database-url``), non-streamed then streamed. For each it reports, per call:

* the time inside collections of each generation (``gc.callbacks`` timing every one)
  and how many ran, after a full collection before the measured calls so that what the
  process imported earlier does not trigger one;
* the objects a call leaves for the cyclic collector: collected with the collector off,
  then found by ``gc.DEBUG_SAVEALL``, counted by type (only objects of chatdebug and
  OpenTelemetry; none is the goal: a cycle among a call's objects keeps all of them,
  the step's span and records included, until a collection).

No assertions: it reports. ::

    .venv/bin/python benchmarks/gc_profile.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_openai import ANSWER, MESSAGES, MODEL, bare_and_recording

import chatdebug

OURS = ("chatdebug", "opentelemetry")


class CollectionClock:
    """Time spent in collections, by generation, while installed."""

    def __init__(self) -> None:
        self.count: Counter[int] = Counter()
        self.seconds: Counter[int] = Counter()
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = int(info["generation"])
            self.count[generation] += 1
            self.seconds[generation] += time.perf_counter() - self._started


def collector_cost(call: Callable[[], None], calls: int) -> CollectionClock:
    for _ in range(200):  # warm-up
        call()
    chatdebug.flush()
    gc.collect()
    clock = CollectionClock()
    gc.callbacks.append(clock)
    try:
        for _ in range(calls):
            call()
        chatdebug.flush()
    finally:
        gc.callbacks.remove(clock)
    return clock


def garbage_left(call: Callable[[], None], calls: int) -> Counter[str]:
    chatdebug.flush()
    gc.collect()
    gc.disable()
    try:
        for _ in range(calls):
            call()
        chatdebug.flush()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return Counter(
            type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith(OURS)
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="measured calls per arm")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    with bare_and_recording(args.database_url) as (bare, recording):
        clients = {"bare": bare, "recording": recording}
        with chatdebug.run("gc-chat", user_id="gc-user", first_message="gc"):
            for kind in ("non-stream", "stream"):
                print(f"\n{kind}: µs per call in cyclic collections (count), {args.calls} calls")
                for arm, client in clients.items():
                    report(arm, _caller(client, kind), args.calls)


def _caller(client: Any, kind: str) -> Callable[[], None]:
    def call() -> None:
        if kind == "stream":
            parts = [
                chunk.choices[0].delta.content or ""
                for chunk in client.chat.completions.create(
                    model=MODEL, messages=MESSAGES, stream=True
                )
                if chunk.choices
            ]
        else:
            reply = client.chat.completions.create(model=MODEL, messages=MESSAGES)
            parts = [reply.choices[0].message.content or ""]
        assert "".join(parts) == ANSWER

    return call


def report(arm: str, call: Callable[[], None], calls: int) -> None:
    clock = collector_cost(call, calls)
    spent = " ".join(
        f"gen{g} {clock.seconds[g] / calls * 1e6:6.1f} ({clock.count[g]:4d})" for g in range(3)
    )
    total = sum(clock.seconds.values()) / calls * 1e6
    print(f"  {arm:<10} total {total:6.1f}   {spent}")
    if arm == "recording":
        left = garbage_left(call, 100)
        kinds = ", ".join(f"{name} {n / 100:g}" for name, n in left.most_common(6))
        print(
            f"  {'':<10} objects of ours left to the collector per call: "
            f"{sum(left.values()) / 100:g}" + (f" ({kinds})" if kinds else "")
        )


if __name__ == "__main__":
    main()
