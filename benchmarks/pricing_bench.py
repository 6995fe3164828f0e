"""CPU per priced step: the pricer's measured rates next to genai-prices' own calculation.

The background writer prices every finished step (``Pricer.price``). For a few usual
steps (OpenAI with cached input, Anthropic with cache reads and writes, Gemini with
thinking tokens, OpenAI at the flex tier, a tiered Gemini model above its threshold) it
prices the same step ``--calls`` times with the default pricer and with
``Pricer(_fast=False)``, every figure calculated by genai-prices, alternating the two for
``--rounds`` rounds so that a slow phase of the machine hits both alike. Reported: the
median CPU time (``time.thread_time``) per price of each, in microseconds. Both pricers
have priced each step once before (the database is loaded, the rates measured). It
checks that both give the same cost, and asserts nothing else::

    .venv/bin/python benchmarks/pricing_bench.py [--rounds 7] [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chatdebug.exporter import Pricer

AT = datetime(2026, 11, 16, tzinfo=UTC)  # with the service tiers of 2026-10

# (label, usage, provider, models, service tier)
STEPS: list[tuple[str, dict[str, int], str, tuple[str, ...], str | None]] = [
    (
        "openai gpt-4o-mini, cached input",
        {"input_tokens": 1_200, "output_tokens": 300, "cache_read_tokens": 800},
        "openai",
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        None,
    ),
    (
        "anthropic sonnet 4.5, cache read+write",
        {
            "input_tokens": 40,
            "output_tokens": 500,
            "cache_read_tokens": 20_000,
            "cache_creation_tokens": 3_000,
        },
        "anthropic",
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        None,
    ),
    (
        "gemini 2.5 flash, thinking",
        {"input_tokens": 2_000, "output_tokens": 1_500, "reasoning_tokens": 1_200},
        "gcp.gemini",
        ("gemini-2.5-flash",),
        None,
    ),
    (
        "openai gpt-5, flex tier",
        {"input_tokens": 3_000, "output_tokens": 900, "reasoning_tokens": 600},
        "openai",
        ("gpt-5-2025-08-07", "gpt-5"),
        "flex",
    ),
    (
        "gemini 2.5 pro, 300k input (tier)",
        {"input_tokens": 300_000, "output_tokens": 2_000},
        "gcp.vertex_ai",
        ("gemini-2.5-pro",),
        None,
    ),
]


def _per_price(pricer: Pricer, step: tuple[Any, ...], calls: int) -> float:
    _, usage, provider, models, tier = step
    price = pricer.price
    start = time.thread_time()
    for _ in range(calls):
        price(usage, provider=provider, models=models, at=AT, service_tier=tier)
    return (time.thread_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2_000, help="prices per round (fast)")
    args = parser.parse_args()
    fast, slow = Pricer(), Pricer(_fast=False)
    print(f"{'step':40s} {'fast µs':>9s} {'slow µs':>9s} {'ratio':>7s}")
    for step in STEPS:
        label, usage, provider, models, tier = step
        where: dict[str, Any] = {
            "provider": provider,
            "models": models,
            "at": AT,
            "service_tier": tier,
        }
        expected = slow.price(usage, **where)
        if fast.price(usage, **where) != expected or expected.cost is None:
            raise SystemExit(f"{label}: the fast and slow costs differ (or there is none)")
        timings: dict[str, list[float]] = {"fast": [], "slow": []}
        for _ in range(args.rounds):
            timings["fast"].append(_per_price(fast, step, args.calls))
            # genai-prices' calculation is ~10x slower: fewer calls, a similar time.
            timings["slow"].append(_per_price(slow, step, max(1, args.calls // 10)))
        fast_us = statistics.median(timings["fast"])
        slow_us = statistics.median(timings["slow"])
        print(f"{label:40s} {fast_us:9.1f} {slow_us:9.1f} {slow_us / fast_us:6.1f}x")


if __name__ == "__main__":
    main()
