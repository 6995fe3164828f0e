"""What recording costs an application: the same ``openai`` SDK call with and without
chatdebug, against a loopback server.

Variants, all through the real ``openai`` SDK on an ``httpx2`` client with the same
settings (timeouts, redirects), differing only in what chatdebug adds:

* ``baseline``    the library's own transport, no run;
* ``recording``   ``chatdebug.httpx2_client()`` inside a recording ``chatdebug.run()``
  (spans go to a real SDK ``TracerProvider`` with recording forced on; by default it
  has no exporter, ``--exporter memory`` adds an in-memory one; ``--store URL`` also
  persists every run and step through a ``StoreSpanProcessor``, as ``configure`` does);
* ``disabled``    the same client inside a run that is not enabled for its user;
* ``passthrough`` the same client outside any run.

Measured per call: a non-streamed completion, a 200-chunk stream read to its end, the
time to the first streamed chunk, and the cost per chunk, derived from the difference
between a 200-chunk and a 10-chunk stream. The variants run in interleaved rounds: each
round measures every variant once, in an order that rotates from round to round, so
that a slow phase of the machine hits them alike. The table shows the median over rounds,
the median of the per-round differences from the baseline, and the ratio of medians.
The cost of an empty ``with chatdebug.run()`` block is measured against an empty
``with contextlib.nullcontext()`` block timed the same way, in the same run.
No assertions: this reports, it does not judge.

The server is a small keep-alive HTTP/1.1 server in a thread that answers from
precomputed bytes, writing each SSE event separately, as providers do.

    .venv/bin/python benchmarks/overhead.py [--rounds N] [--exporter none|memory] [--store URL]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import chatdebug
from chatdebug.exporter import StoreSpanProcessor
from chatdebug.instrument import InstrumentSettings, install
from chatdebug.store import open_store

VARIANTS = ("baseline", "recording", "disabled", "passthrough")
MESSAGES: Any = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a short poem about loopback interfaces."},
]


# -- the loopback server -------------------------------------------------------------------


def _completion(n_words: int) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(["word"] * n_words)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": n_words, "total_tokens": 20 + n_words},
    }
    return json.dumps(body).encode()


def _stream_events(n_chunks: int) -> list[bytes]:
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": f" tok{i}"}) for i in range(n_chunks)]
    events.append(event({}, "stop"))
    usage = {"prompt_tokens": 20, "completion_tokens": n_chunks, "total_tokens": 20 + n_chunks}
    events.append(
        b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode() + b"\n\n"
    )
    events.append(b"data: [DONE]\n\n")
    return events


class LoopbackServer:
    """Answers ``POST .../chat/completions``; the model name ``bench-N`` asks for N
    stream chunks (or N words when not streamed)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._cache: dict[tuple[bool, int], list[bytes]] = {}
        threading.Thread(target=self._accept, daemon=True).start()

    def _reply(self, stream: bool, n: int) -> list[bytes]:
        key = (stream, n)
        if key not in self._cache:
            if stream:
                head = (
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                events = [b"%x\r\n%s\r\n" % (len(e), e) for e in _stream_events(n)]
                parts = [head + events[0], *events[1:], b"0\r\n\r\n"]
            else:
                body = _completion(n)
                parts = [
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                ]
            self._cache[key] = parts
        return self._cache[key]

    def _accept(self) -> None:
        while True:
            conn, _ = self._sock.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._exchange(conn)
        except OSError:
            pass  # the client went away (the sync SDK closes a stream at [DONE])

    def _exchange(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                buf += conn.recv(65536)
            body, buf = json.loads(buf[:length]), buf[length:]
            n = int(str(body.get("model", "bench-1")).rpartition("-")[2])
            for part in self._reply(bool(body.get("stream")), n):
                conn.sendall(part)


# -- one call of each kind ------------------------------------------------------------------


def _call(client: openai.OpenAI, n: int) -> float:
    start = time.perf_counter()
    reply = client.chat.completions.create(model=f"bench-{n}", messages=MESSAGES)
    assert reply.choices[0].message.content
    return time.perf_counter() - start


def _stream(client: openai.OpenAI, n: int) -> tuple[float, float]:
    """(time to first content chunk, total) of a stream read to its end."""
    start = time.perf_counter()
    first = 0.0
    count = 0
    for chunk in client.chat.completions.create(model=f"bench-{n}", messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            if not count:
                first = time.perf_counter() - start
            count += 1
    total = time.perf_counter() - start
    assert count == n
    return first, total


# -- variants ---------------------------------------------------------------------------------


class Variant:
    def __init__(
        self,
        name: str,
        server: LoopbackServer,
        provider: TracerProvider,
        sink: StoreSpanProcessor | None = None,
    ) -> None:
        self.name = name
        timeout = httpx2.Timeout(600.0, connect=5.0)
        if name == "baseline":
            http: Any = httpx2.Client(
                transport=httpx2.HTTPTransport(), timeout=timeout, follow_redirects=True
            )
        else:
            http = chatdebug.httpx2_client()
        self.client = openai.OpenAI(
            api_key="sk-bench", base_url=server.url + "/v1", http_client=http, max_retries=0
        )
        self.settings = InstrumentSettings(
            tracer_provider=provider, force_enabled=name != "disabled", sink=sink
        )

    def measure(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` as this variant would: settings installed, inside a run or not."""
        install(self.settings)
        if self.name in ("baseline", "passthrough"):
            return fn()
        with chatdebug.run("bench-chat", user_id="bench-user", first_message="poem") as run:
            assert run.recording == (self.name == "recording")
            return fn()


def _round(variant: Variant, results: dict[str, list[float]]) -> None:
    """One of each measurement for ``variant``."""
    client = variant.client
    results["call"].append(variant.measure(lambda: _call(client, 50)))
    first, total = variant.measure(lambda: _stream(client, 200))
    results["ttfc"].append(first)
    results["stream200"].append(total)
    results["stream10"].append(
        statistics.median(variant.measure(lambda: _stream(client, 10))[1] for _ in range(2))
    )


def _run_block_cost(variant: Variant | None, n: int = 2000) -> float:
    """Seconds per empty ``with chatdebug.run(...)`` block (the run alone); with no
    variant, per empty ``with contextlib.nullcontext()`` block (the loop's own cost)."""
    if variant is None:
        start = time.perf_counter()
        for _ in range(n):
            with contextlib.nullcontext():
                pass
        return (time.perf_counter() - start) / n
    install(variant.settings)
    start = time.perf_counter()
    for _ in range(n):
        with chatdebug.run("bench-chat", user_id="bench-user"):
            pass
    return (time.perf_counter() - start) / n


METRICS = ("call", "stream200", "ttfc", "stream10", "per_chunk")
LABELS = {
    "call": "non-streamed call",
    "stream200": "stream, 200 chunks, total",
    "ttfc": "stream, time to first chunk",
    "stream10": "stream, 10 chunks, total",
    "per_chunk": "per chunk (200 vs 10)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--exporter", choices=("none", "memory"), default="none")
    parser.add_argument(
        "--store", default=None, help="also persist runs and steps to this database URL"
    )
    args = parser.parse_args()

    provider = TracerProvider()
    exporter = None
    if args.exporter == "memory":
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = None
    if args.store:
        store = open_store(args.store)
        store.migrate()
        sink = StoreSpanProcessor(store)
        provider.add_span_processor(sink)
    server = LoopbackServer()
    variants = [Variant(name, server, provider, sink) for name in VARIANTS]
    results: dict[str, dict[str, list[float]]] = {
        v.name: {k: [] for k in METRICS} for v in variants
    }
    for variant in variants:  # warm up connections, imports, caches
        for _ in range(5):
            variant.measure(lambda v=variant: _call(v.client, 50))
            variant.measure(lambda v=variant: _stream(v.client, 200))
    gc.collect()
    for index in range(args.rounds):
        # Every round measures each variant once, in a rotating order, so that slow
        # phases of the machine hit all of them alike.
        shift = index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            _round(variant, results[variant.name])
        if exporter is not None:
            exporter.clear()
    for r in results.values():
        r["per_chunk"] = [(a - b) / 190 for a, b in zip(r["stream200"], r["stream10"], strict=True)]
    # Interleaved like the rounds: the empty block's own cost is the baseline.
    run_cost: dict[str, list[float]] = {"none": [], "recording": [], "disabled": []}
    by_name = {v.name: v for v in variants}
    for _ in range(5):
        run_cost["none"].append(_run_block_cost(None))
        run_cost["recording"].append(_run_block_cost(by_name["recording"]))
        run_cost["disabled"].append(_run_block_cost(by_name["disabled"]))
    install(InstrumentSettings())
    if sink is not None:
        sink.shutdown()

    base = results["baseline"]
    print(
        f"openai SDK {openai.__version__} on httpx2 {httpx2.__version__}, loopback server; "
        f"{args.rounds} interleaved rounds, exporter: {args.exporter}, "
        f"store: {args.store or 'none'}"
    )
    print("medians over rounds; Δ = median of the per-round differences from the baseline")
    header = (
        f"{'metric':<30}{'baseline':>11}{'recording':>11}{'Δ':>10}{'ratio':>7}"
        f"{'disabled':>11}{'Δ':>10}{'passthru':>11}{'Δ':>10}"
    )
    print(header)
    print("-" * len(header))
    for key in METRICS:
        line = f"{LABELS[key]:<30}{_fmt(statistics.median(base[key])):>11}"
        for name in ("recording", "disabled", "passthrough"):
            values = results[name][key]
            delta = statistics.median(v - b for v, b in zip(values, base[key], strict=True))
            line += f"{_fmt(statistics.median(values)):>11}{_fmt(delta, signed=True):>10}"
            if name == "recording":
                ratio = statistics.median(values) / statistics.median(base[key])
                line += f"{ratio:>7.2f}"
        print(line)
    print()
    empty = run_cost["none"]

    def block(name: str) -> str:
        delta = statistics.median(v - b for v, b in zip(run_cost[name], empty, strict=True))
        return f"{_fmt(delta, signed=True)}"

    print(
        f"empty `with chatdebug.run()` block vs an empty `with nullcontext()` block "
        f"({_fmt(statistics.median(empty))}): recording {block('recording')}, "
        f"disabled {block('disabled')}"
    )


def _fmt(seconds: float, *, signed: bool = False) -> str:
    micro = seconds * 1e6
    text = f"{micro:+.0f} µs" if signed else f"{micro:.0f} µs"
    if abs(micro) >= 10_000:
        text = f"{seconds * 1e3:+.1f} ms" if signed else f"{seconds * 1e3:.1f} ms"
    return text


if __name__ == "__main__":
    main()
