"""A chat application in its own process, driven by the reliability tests.

It records through chatdebug exactly as a user's application does
(``chatdebug.configure(url, enabled=True)``, the real ``openai`` SDK on a chatdebug
httpx2 client, against a loopback provider) and takes one JSON command per line on
stdin, answering with JSON lines on stdout:

* ``{"cmd": "runs", "count": N, "steps": S, "threads": T, "prefix": P}`` starts N runs
  of S model calls each on T threads, in the background, in chats ``P-<n>`` (plus
  ``suffixes[n % len(suffixes)]`` when given; with ``"rate": R`` at most R calls a
  second; with ``"announce": true`` a ``{"event": "run_started", "run_id", "at"}`` line
  as each run is entered); ``{"event": "progress"}``
  lines follow every 25 runs, then ``{"event": "runs_done", ...}`` with every run id,
  the wall-clock start and end of every call and every exception the caller saw;
* ``{"cmd": "flush", "timeout": T}`` answers ``{"event": "flushed", "ok", "seconds"}``;
* ``{"cmd": "metrics"}`` answers with the exporter's counters and what a sampler saw
  of the ``chatdebug_store_reachable`` and oldest-event-age gauges;
* ``{"cmd": "exit"}`` returns from ``main`` (the interpreter then exits normally and
  chatdebug's exit flush runs); ``{"cmd": "serve", "exit_handler": bool}`` instead
  runs a uvicorn server whose requests each record a run, until SIGTERM shuts it down
  gracefully (see :meth:`App.serve`).

After chatdebug's exit flush, an ``{"event": "exited"}`` line gives the same counters as
``metrics`` (not when a signal's default action ends the process: no exit hook runs).

Options come as one JSON argument: ``url``, ``provider``, ``configure`` (extra
``configure()`` keyword arguments), ``faults`` (see :class:`FaultyStore`) and
``sigterm_exit`` (the application handles SIGTERM itself with ``sys.exit(0)``; else
chatdebug's own handler flushes, then lets SIGTERM end the process).
Run as ``python -m tests.reliability._app '<json>'`` from the repository root.
"""

from __future__ import annotations

import atexit
import faulthandler
import json
import logging
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

import openai
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug.metrics import DROP_REASONS, EVENT_KINDS, Metrics
from chatdebug.store import NewRun, Run, Step, StepUpdate, Store, open_store

_out_lock = threading.Lock()


def emit(message: dict[str, Any]) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


class FaultyStore:
    """A store whose calls raise ``RuntimeError`` where the test says so: ``create_run``
    of chats ending in ``faults["create_run"]``, ``update_step`` of chats ending in
    ``faults["update_step"]``, and every ``faults["batch_every"]``-th ``batch()``.
    Everything else goes to the real store. ``injected`` counts the raised errors."""

    def __init__(self, inner: Store, faults: dict[str, Any]) -> None:
        self._inner = inner
        self._faults = faults
        self._batches = 0
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {"create_run": 0, "update_step": 0, "batch": 0}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _inject(self, where: str) -> None:
        with self._lock:
            self.injected[where] += 1
        raise RuntimeError(f"injected fault in {where}")

    def create_run(self, params: NewRun) -> Run:
        if params.chat_id.endswith(self._faults.get("create_run", "\0")):
            self._inject("create_run")
        return self._inner.create_run(params)

    def update_step(self, params: StepUpdate) -> Step:
        if params.chat_id.endswith(self._faults.get("update_step", "\0")):
            self._inject("update_step")
        return self._inner.update_step(params)

    def batch(self) -> AbstractContextManager[None]:
        every = int(self._faults.get("batch_every", 0))
        with self._lock:
            self._batches += 1
            fail = bool(every) and self._batches % every == 0
        if fail:
            self._inject("batch")
        return self._inner.batch()


class GaugeSampler:
    """Samples the outage gauges every 50 ms: the lowest ``store_reachable`` seen, when
    it first went to 0 and last came back to 1, and the highest oldest-event age."""

    def __init__(self, metrics: Metrics) -> None:
        self.registry = metrics.registry
        self.min_reachable: float | None = None
        self.max_oldest_age = 0.0
        self.unreachable_at: float | None = None
        self.reachable_again_at: float | None = None
        self.max_journal_bytes = 0.0
        self.min_writable: dict[str, float] = {}
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            reachable = self.registry.get_sample_value("chatdebug_store_reachable")
            age = self.registry.get_sample_value("chatdebug_exporter_oldest_event_age_seconds")
            now = time.time()
            if reachable is not None:
                if self.min_reachable is None or reachable < self.min_reachable:
                    self.min_reachable = reachable
                if reachable == 0 and self.unreachable_at is None:
                    self.unreachable_at = now
                if reachable == 1 and self.unreachable_at is not None:
                    self.reachable_again_at = now
            if age is not None:
                self.max_oldest_age = max(self.max_oldest_age, age)
            size = self.registry.get_sample_value("chatdebug_spill_journal_bytes") or 0.0
            self.max_journal_bytes = max(self.max_journal_bytes, size)
            for target in ("store", "journal"):
                value = self.registry.get_sample_value(
                    "chatdebug_storage_writable", {"target": target}
                )
                if value is not None:
                    self.min_writable[target] = min(self.min_writable.get(target, 1.0), value)
            time.sleep(0.05)


class App:
    def __init__(self, options: dict[str, Any]) -> None:
        self.metrics = Metrics(CollectorRegistry())
        self.faulty: FaultyStore | None = None
        extra: dict[str, Any] = dict(options.get("configure") or {})
        if options.get("faults"):
            self.faulty = FaultyStore(open_store(options["url"]), options["faults"])
            extra["store"] = self.faulty
        chatdebug.configure(options["url"], enabled=True, metrics=self.metrics, **extra)
        self.sampler = GaugeSampler(self.metrics)
        self.client = openai.OpenAI(
            base_url=options["provider"] + "/v1",
            api_key="sk-reliability-test-key",
            http_client=chatdebug.httpx2_client(),
            max_retries=0,
            timeout=30,
        )

    def one_run(self, chat_id: str, steps: int, announce: bool = False) -> dict[str, Any]:
        calls: list[tuple[float, float]] = []
        result: dict[str, Any] = {"chat_id": chat_id, "run_id": None, "error": None}
        entered = time.time()
        try:
            with chatdebug.run(chat_id, user_id="u-rel", first_message=f"hello {chat_id}") as run:
                result["run_id"] = str(run.id)
                if announce:
                    emit({"event": "run_started", "run_id": str(run.id), "at": time.time()})
                for number in range(steps):
                    started = time.time()
                    reply = self.client.chat.completions.create(
                        model="gpt-4o",
                        messages=[{"role": "user", "content": f"{chat_id} step {number}"}],
                    )
                    calls.append((started, time.time()))
                    if not reply.choices[0].message.content:
                        raise AssertionError("empty reply")
        except BaseException as exc:  # everything the caller would have seen
            result["error"] = "".join(traceback.format_exception_only(exc)).strip()
        result["calls"] = calls
        result["run_block"] = (entered, time.time())
        return result

    def runs(
        self,
        count: int,
        steps: int,
        threads: int,
        prefix: str,
        suffixes: list[str],
        rate: float | None = None,
        announce: bool = False,
    ) -> None:
        results: list[dict[str, Any]] = []
        done = 0
        lock = threading.Lock()
        began = time.monotonic()

        def work(index: int) -> None:
            nonlocal done
            if rate:  # run ``index`` starts when its calls are due at ``rate`` calls/s
                delay = began + index * steps / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            suffix = suffixes[index % len(suffixes)] if suffixes else ""
            outcome = self.one_run(f"{prefix}-{index}{suffix}", steps, announce)
            with lock:
                results.append(outcome)
                done += 1
                if done % 25 == 0:
                    emit({"event": "progress", "done": done})

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(count)))
        emit({"event": "runs_done", "runs": results})

    def flush(self, timeout: float) -> None:
        started = time.monotonic()
        ok = chatdebug.flush(timeout)
        emit({"event": "flushed", "ok": ok, "seconds": time.monotonic() - started})

    def report(self) -> dict[str, Any]:
        get = self.metrics.registry.get_sample_value
        return {
            "dropped": {
                r: get("chatdebug_exporter_events_dropped_total", {"reason": r}) or 0
                for r in DROP_REASONS
            },
            "written": {
                k: get("chatdebug_exporter_events_written_total", {"kind": k}) or 0
                for k in EVENT_KINDS
            },
            "write_errors": sum(
                get("chatdebug_exporter_write_errors_total", {"kind": k}) or 0 for k in EVENT_KINDS
            ),
            "internal_errors": get("chatdebug_internal_errors_total", {"component": "exporter"})
            or 0,
            "queue_depth": get("chatdebug_exporter_queue_depth"),
            "spilled": get("chatdebug_spill_events_total") or 0,
            "replayed": get("chatdebug_spill_replayed_events_total") or 0,
            "journal_events": get("chatdebug_spill_journal_events") or 0,
            "journal_bytes": get("chatdebug_spill_journal_bytes") or 0,
            "replay_lag": get("chatdebug_spill_replay_lag_seconds") or 0,
            "max_journal_bytes": self.sampler.max_journal_bytes,
            "storage_writable": {
                t: get("chatdebug_storage_writable", {"target": t}) for t in ("store", "journal")
            },
            "min_storage_writable": dict(self.sampler.min_writable),
            "storage_failures": {
                f"{t}/{r}": get("chatdebug_storage_failures_total", {"target": t, "reason": r}) or 0
                for t in ("store", "journal")
                for r in ("disk_full", "read_only", "io_error", "cannot_open")
            },
            "min_reachable": self.sampler.min_reachable,
            "max_oldest_age": self.sampler.max_oldest_age,
            "unreachable_at": self.sampler.unreachable_at,
            "reachable_again_at": self.sampler.reachable_again_at,
            "injected": self.faulty.injected if self.faulty is not None else {},
        }

    def serve(self, exit_handler: bool) -> None:
        """A real ASGI application under uvicorn: each POST records one run of one call.
        uvicorn turns SIGTERM into a graceful shutdown, then raises the signal again
        with the handler that was there before it started: with ``exit_handler`` the
        application's own (``sys.exit(0)``, a normal exit), else the default one."""
        import signal

        import uvicorn

        if exit_handler:
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            import asyncio

            chat_id = scope["path"].strip("/")
            outcome = await asyncio.to_thread(self.one_run, chat_id, 1)
            body = json.dumps(outcome).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})

        config = uvicorn.Config(asgi, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="off")  # fmt: skip
        server = uvicorn.Server(config)

        def announce() -> None:
            while not server.started:
                time.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            emit({"event": "serving", "port": port})

        threading.Thread(target=announce, daemon=True).start()
        server.run()
        print("APP EXITING", file=sys.stderr, flush=True)


def main() -> None:
    # SIGUSR1 writes every thread's stack to the log: the test asks for it when the
    # application does not answer, to see where it is.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    options = json.loads(sys.argv[1])
    apps: list[App] = []

    # Registered before configure() registers chatdebug's exit flush: atexit runs last
    # in, first out, so this reports the counters as they are after that flush.
    @atexit.register
    def _report_after_exit_flush() -> None:
        if apps:
            emit({"event": "exited", **apps[0].report()})

    if options.get("sigterm_exit"):
        # The application's own SIGTERM handler, installed before chatdebug's
        # configure(), which then leaves it in place: a normal exit, through atexit.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    app = App(options)
    apps.append(app)
    emit({"event": "ready"})
    for line in sys.stdin:
        command = json.loads(line)
        name = command["cmd"]
        if name == "runs":
            threading.Thread(
                target=app.runs,
                args=(
                    command["count"],
                    command["steps"],
                    command["threads"],
                    command["prefix"],
                    command.get("suffixes") or [],
                    command.get("rate"),
                    bool(command.get("announce")),
                ),
                daemon=True,
            ).start()
        elif name == "flush":
            app.flush(float(command["timeout"]))
        elif name == "metrics":
            emit({"event": "metrics", **app.report()})
        elif name == "serve":
            app.serve(bool(command.get("exit_handler")))
            return
        elif name == "exit":
            print("APP EXITING", file=sys.stderr, flush=True)
            return


if __name__ == "__main__":
    main()
