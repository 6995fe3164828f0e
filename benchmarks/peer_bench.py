"""What LLM-call instrumentation costs an application: chatdebug next to its peers.

The real ``openai`` SDK calls a loopback OpenAI-compatible server that runs in its own
process; each variant runs in a fresh process. Rounds interleave ``bare, v1, bare, v2,
…, bare`` with the order rotated per round; each variant is compared with the ``bare``
runs just before and after it, and the table gives the median over rounds.

* ``bare``          the SDK's default client, nothing installed;
* ``ours-sqlite``   ``chatdebug.configure(sqlite, enabled=True)``, one long run, the SDK on
  ``chatdebug.httpx2_client()``: every call is a step persisted to a temporary SQLite file;
* ``ours-pg``       the same, persisted to PostgreSQL (``--pg-url``);
* ``otel-httpx``    ``opentelemetry-instrumentation-httpx`` (one client span, no bodies);
* ``openllmetry``   ``opentelemetry-instrumentation-openai``;
* ``openinference`` ``openinference-instrumentation-openai``.

Peers send their spans through a ``BatchSpanProcessor`` to an exporter that counts and
discards them (they persist nothing); ours go to the same kind of provider and are also
persisted. With two or more CPUs the server runs on CPU 1 and the measured process on
CPU 0, so every background thread (span processors, our writer) competes with the
calling thread, as on a busy server.

The peers are the optional ``bench`` extra. Install them next to chatdebug in a venv of
their own (they patch the ``openai`` SDK globally, so keep them out of your app's)::

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install -e '.[bench,demo]'
    /tmp/peers/bin/python benchmarks/peer_bench.py --rounds 3
    /tmp/peers/bin/python benchmarks/peer_bench.py --variants ours-sqlite otel-httpx

Variants whose package is missing are reported and left out. No assertions: this
reports, it does not judge. Numbers move by tens of µs between complete runs on a small
machine: compare variants within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopback_openai import ANSWER, MESSAGES, MODEL, WORDS, loopback_server, pin, stream_events

ALL_VARIANTS = ("ours-sqlite", "ours-pg", "otel-httpx", "openllmetry", "openinference")


# -- one measured process ---------------------------------------------------------------------


class _Counting:
    """A span exporter that counts and discards (the peers persist nothing)."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _provider(counter: _Counting) -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(counter))  # type: ignore[arg-type]
    trace.set_tracer_provider(provider)
    return provider


def _setup(variant: str, base_url: str, pg_url: str, counter: _Counting) -> dict[str, Any]:
    """Install ``variant``; the ``openai.OpenAI`` keyword arguments to use."""
    kwargs: dict[str, Any] = {"base_url": base_url, "api_key": "sk-bench", "max_retries": 0}
    if variant == "bare":
        return kwargs
    provider = _provider(counter)
    if variant in ("ours-sqlite", "ours-pg"):
        import chatdebug

        url = pg_url
        if variant == "ours-sqlite":
            url = "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="peer-bench-"), "b.db")
        chatdebug.configure(url, enabled=True, tracer_provider=provider)
        run = chatdebug.run("bench-chat", user_id="bench-user", first_message="bench")
        run.__enter__()  # one long run: every call is one step of it
        return {**kwargs, "http_client": chatdebug.httpx2_client()}
    if variant == "otel-httpx":
        from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

        HTTPX2ClientInstrumentor().instrument(tracer_provider=provider)
    elif variant == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
    elif variant == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor as OIInstrumentor

        OIInstrumentor().instrument(tracer_provider=provider)
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    return kwargs


def _timed(n: int, call: Callable[[], Any]) -> list[int]:
    out = []
    for _ in range(n):
        start = time.perf_counter_ns()
        call()
        out.append(time.perf_counter_ns() - start)
    return out


def measure(variant: str, base_url: str, pg_url: str, n: int, stream_n: int) -> dict[str, Any]:
    """Per-call latencies of ``variant`` in this process (µs medians and p99s)."""
    import openai

    counter = _Counting()
    client = openai.OpenAI(**_setup(variant, base_url, pg_url, counter))
    create = client.chat.completions.create

    def plain() -> None:
        reply = create(model=MODEL, messages=MESSAGES)
        assert reply.choices[0].message.content == ANSWER

    ttfts: list[int] = []

    def streamed() -> None:
        start = time.perf_counter_ns()
        first = 0
        parts = []
        for chunk in create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            if not first:
                first = time.perf_counter_ns()
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        ttfts.append(first - start)
        assert "".join(parts) == ANSWER

    _timed(n // 10, plain)  # warm-up
    _timed(stream_n // 10, streamed)
    ttfts.clear()
    plain_ns = _timed(n, plain)
    stream_ns = _timed(stream_n, streamed)

    def stats(values: list[int]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "median_us": statistics.median(ordered) / 1000,
            "p99_us": ordered[int(len(ordered) * 0.99) - 1] / 1000,
        }

    if variant.startswith("ours"):
        import chatdebug

        chatdebug.flush()
    return {
        "variant": variant,
        "nonstream": stats(plain_ns),
        "stream": stats(stream_ns),
        "ttft": stats(ttfts),
        "chunks": len(stream_events()) - 1,
        "spans": counter.count,
    }


# -- the driver -----------------------------------------------------------------------------


def _child(variant: str, args: argparse.Namespace, base_url: str) -> dict[str, Any] | None:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = out.name
    command = [sys.executable, __file__, "--child", variant, "--base-url", base_url, "--out", path]
    command += ["--n", str(args.n), "--stream-n", str(args.stream_n), "--pg-url", args.pg_url]
    done = subprocess.run(command, preexec_fn=pin(0), capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  {variant}: failed\n{done.stderr.strip()[-800:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(Path(path).read_text())
    os.unlink(path)
    medians = [result[key]["median_us"] for key in ("nonstream", "stream", "ttft")]
    print(
        f"  {variant:14s} non-stream {medians[0]:8.1f} µs  stream {medians[1]:8.1f} µs"
        f"  TTFT {medians[2]:8.1f} µs",
        file=sys.stderr,
    )
    return result


def _available(variant: str) -> bool:
    module = {
        "otel-httpx": "opentelemetry.instrumentation.httpx",
        "openllmetry": "opentelemetry.instrumentation.openai",
        "openinference": "openinference.instrumentation.openai",
    }.get(variant)
    if module is None:
        return True
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _table(deltas: dict[str, dict[str, list[float]]], chunks: int) -> str:
    def cell(values: list[float]) -> str:
        if not values:
            return "n/a"
        return f"{statistics.median(values):+.0f} ({min(values):+.0f}..{max(values):+.0f})"

    lines = [
        "| variant | non-stream Δ µs | p99 Δ µs | stream Δ µs | TTFT Δ µs | per chunk Δ µs |",
        "|---|---|---|---|---|---|",
    ]
    for variant, d in deltas.items():
        per_chunk = [(s - t) / (chunks - 1) for s, t in zip(d["stream"], d["ttft"], strict=True)]
        lines.append(
            f"| {variant} | {cell(d['nonstream'])} | {cell(d['p99'])} | {cell(d['stream'])} "
            f"| {cell(d['ttft'])} | {statistics.median(per_chunk):+.1f} |"
        )
    return "\n".join(lines)


def drive(args: argparse.Namespace) -> None:
    variants = [v for v in args.variants if _available(v)]
    for missing in sorted(set(args.variants) - set(variants)):
        print(f"{missing}: not installed (pip install 'chatdebug[bench]'), left out")
    with loopback_server() as base_url:
        deltas = _rounds(args, variants, base_url)
    print(
        f"\n{args.rounds} rounds; per run {args.n} non-streamed calls and {args.stream_n} "
        f"streams of {len(WORDS)} content chunks; Δ vs the bare runs just before and after; "
        "median (min..max) over rounds; pinned: "
        f"{'yes' if pin(0) else 'no'}\n"
    )
    print(_table(deltas, len(stream_events()) - 1))


def _rounds(
    args: argparse.Namespace, variants: list[str], base_url: str
) -> dict[str, dict[str, list[float]]]:
    keys = ("nonstream", "p99", "stream", "ttft")
    deltas: dict[str, dict[str, list[float]]] = {v: {k: [] for k in keys} for v in variants}

    def value(result: dict[str, Any], key: str) -> float:
        if key == "p99":
            return float(result["nonstream"]["p99_us"])
        return float(result[key]["median_us"])

    for index in range(args.rounds):
        print(f"round {index + 1}/{args.rounds}", file=sys.stderr)
        order = variants[index % len(variants) :] + variants[: index % len(variants)]
        before = _child("bare", args, base_url)
        for variant in order:
            result = _child(variant, args, base_url)
            after = _child("bare", args, base_url)
            if result is None or before is None or after is None:
                before = after
                continue
            for key in keys:
                bare = (value(before, key) + value(after, key)) / 2
                deltas[variant][key].append(value(result, key) - bare)
            before = after
    return deltas


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=2000, help="non-streamed calls per run")
    parser.add_argument("--stream-n", type=int, default=500, help="streams per run")
    parser.add_argument("--variants", nargs="+", default=list(ALL_VARIANTS))
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--child", metavar="VARIANT", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = measure(args.child, args.base_url, args.pg_url, args.n, args.stream_n)
        Path(args.out).write_text(json.dumps(result))
    else:
        drive(args)


if __name__ == "__main__":
    main()
