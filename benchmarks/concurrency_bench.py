"""Throughput of many concurrent streams in one event loop, with and without recording.

32 tasks in one asyncio loop each read ``AsyncOpenAI`` chat-completion streams (22
content chunks) back to back from a loopback server in its own process (the server of
``loopback_openai.py``), for a fixed number of streams per phase. Phases alternate ``bare``
(the SDK's own client, nothing installed) and ``recording`` (each task inside its own
``chatdebug.run()``, the SDK on ``chatdebug.async_httpx2_client()``, persisted to SQLite
or ``--url``), several rounds each; the report is the median calls/s of each and their
ratio. With two or more CPUs the server runs on CPU 1 and this process on CPU 0, so our
writer thread competes with the loop. No assertions: this reports, it does not judge.

    .venv/bin/python benchmarks/concurrency_bench.py [--tasks 32] [--streams 1600] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import openai
from loopback_openai import loopback_server, pin

import chatdebug

MESSAGES: Any = [{"role": "user", "content": "Say hello to the benchmark."}]


async def _worker(client: openai.AsyncOpenAI, count: int, record: bool) -> int:
    async def streams() -> int:
        chunks = 0
        for _ in range(count):
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _chunk in stream:
                chunks += 1
        return chunks

    if not record:
        return await streams()
    async with chatdebug.run("concurrency-bench", user_id="bench"):
        return await streams()


async def _phase(base_url: str, tasks: int, streams: int, record: bool) -> float:
    """Streams per second of one phase."""
    http: Any = chatdebug.async_httpx2_client() if record else None
    client = openai.AsyncOpenAI(
        base_url=base_url,
        api_key="sk-bench",
        max_retries=0,
        **({"http_client": http} if http is not None else {}),
    )
    per_task = max(1, streams // tasks)
    await asyncio.gather(*(_worker(client, 2, record) for _ in range(tasks)))  # warm-up
    start = time.perf_counter()
    await asyncio.gather(*(_worker(client, per_task, record) for _ in range(tasks)))
    elapsed = time.perf_counter() - start
    await client.close()
    return per_task * tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--streams", type=int, default=1600, help="streams per phase")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", default=None, help="database URL (default: a temp SQLite)")
    args = parser.parse_args()
    pinned = pin(0)
    url = args.url or "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="conc-bench-"), "b.db")
    chatdebug.configure(url, enabled=True)
    with loopback_server() as base_url:
        if pinned is not None:
            pinned()
        rates: dict[str, list[float]] = {"bare": [], "recording": []}
        for index in range(args.rounds):
            order = ("bare", "recording") if index % 2 == 0 else ("recording", "bare")
            for name in order:
                rate = asyncio.run(_phase(base_url, args.tasks, args.streams, name == "recording"))
                rates[name].append(rate)
                print(f"  round {index + 1} {name:9s} {rate:7.1f} streams/s", file=sys.stderr)
                chatdebug.flush()
    chatdebug.shutdown()
    bare = statistics.median(rates["bare"])
    recording = statistics.median(rates["recording"])
    print(
        f"{args.tasks} concurrent AsyncOpenAI streams in one loop, {args.streams} streams per "
        f"phase, {args.rounds} rounds, pinned: {'yes' if pinned else 'no'}, store: {url}"
    )
    print("| phase | streams/s (median) | min..max |")
    print("|---|---|---|")
    for name, values in rates.items():
        low, high = min(values), max(values)
        print(f"| {name} | {statistics.median(values):.1f} | {low:.1f}..{high:.1f} |")
    print(f"\nrecording / bare = {recording / bare:.1%}")


if __name__ == "__main__":
    main()
