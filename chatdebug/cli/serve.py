"""``chatdebug serve``: the purge and stale-finalization loops plus the HTTP side
(``/metrics``, ``/healthz``, ``/readyz``, read API, viewer) in one long-running process.

The loops run in threads of their own (:class:`chatdebug.ops.Ticker`), as does the one
listener of the store's change events, uvicorn serves the Starlette app in the main
thread. SIGTERM and SIGINT end the event streams (their clients reconnect to the next
process), stop the HTTP server, then the loops (the tick in progress finishes or rolls
back), then close the store; the exit code is 0.
Startup failures (bad URL, unreachable database, port in use, a non-loopback address
without tokens) are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from .._diskspace import storage_problem
from ..environment_variables import CHATDEBUG_ENABLED, CHATDEBUG_SPILL_PATH, truthy
from ..metrics import Metrics
from ..ops import Purger, StaleFinalizer, Ticker
from ..store import PURGE_BATCH_SIZE, Store, StoreUnavailable
from ._core import EXIT_OK, EXIT_USAGE, CommandError, arg, command, open_from_args
from ._tokens import ADMIN_TOKEN_VARIABLE, API_TOKEN_VARIABLE, serve_tokens
from .maintenance import parse_duration

__all__ = ["parse_listen"]

logger = logging.getLogger("chatdebug.serve")

_MISSING_EXTRA = "chatdebug serve needs Starlette and uvicorn: pip install 'chatdebug[serve]'"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (loopback) into host and port."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise CommandError(f"invalid --listen {text!r}: use HOST:PORT, e.g. 127.0.0.1:9464", 2)
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts so "port in use" is a clean
    startup error rather than a log line from inside uvicorn."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}", EXIT_USAGE) from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(False)
    return sock


@contextmanager
def _loops(tickers: list[Ticker]) -> Iterator[None]:
    for ticker in tickers:
        ticker.start()
    try:
        yield
    finally:
        for ticker in tickers:
            ticker.stop()


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


@command(
    "serve",
    "run the purge and stale-finalization loops and serve /metrics, health, the read API "
    "and the viewer",
    arg("--listen", default="127.0.0.1:9464", metavar="HOST:PORT",
        help="address to serve on (default 127.0.0.1:9464; a non-loopback address needs "
        "--token and --admin-token)"),
    arg("--purge-interval", default="10m", metavar="DURATION",
        help="time between purge iterations (default 10m; the first runs at start)"),
    arg("--purge-batch-size", type=int, default=PURGE_BATCH_SIZE, metavar="N",
        help=f"at most N runs deleted per purge iteration (default {PURGE_BATCH_SIZE})"),
    arg("--stale-threshold", default="5m", metavar="DURATION",
        help="no heartbeat for this long means abandoned (default 5m)"),
    arg("--stale-interval", default="1m", metavar="DURATION",
        help="time between stale finalizations (default 1m)"),
    arg("--no-purge", action="store_true", help="do not run the retention purge loop"),
    arg("--no-finalize", action="store_true", help="do not run the stale finalizer loop"),
    arg("--token", default=None, metavar="TOKEN",
        help=f"bearer token for the read API, at least 16 characters (default "
        f"${API_TOKEN_VARIABLE}); on the command line it is visible to anyone who can "
        "list processes (ps): prefer --token-file or the variable"),
    arg("--token-file", default=None, metavar="PATH",
        help="read the read token from the first line of this file"),
    arg("--admin-token", default=None, metavar="TOKEN",
        help=f"bearer token for settings and deletion, at least 16 characters and not "
        f"the read token (default ${ADMIN_TOKEN_VARIABLE}); visible in ps like --token"),
    arg("--admin-token-file", default=None, metavar="PATH",
        help="read the admin token from the first line of this file"),
    arg("--trace-url", default=None, metavar="TEMPLATE",
        help="link each run to its trace in your tracing backend (Jaeger, Tempo, Phoenix…): "
        "an http(s) URL with {trace_id} where the id goes, e.g. "
        "http://localhost:16686/trace/{trace_id}"),
    arg("--spill-path", default=None, metavar="PATH",
        help="the application's spill journal, whose file system /readyz checks "
        "(default $CHATDEBUG_SPILL_PATH)"),
    arg("--event-queue", type=int, default=None, metavar="N",
        help="bursts of events a slow event-stream client may have waiting before it is "
        "dropped with a final reset (default 64)"),
)  # fmt: skip
def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: F401

        from ..server import EventHub, ServerState, create_app
    except ImportError:
        raise CommandError(_MISSING_EXTRA, EXIT_USAGE) from None
    purge_interval = parse_duration(args.purge_interval).total_seconds()
    stale_threshold = parse_duration(args.stale_threshold)
    stale_interval = parse_duration(args.stale_interval).total_seconds()
    if args.purge_batch_size < 1:
        raise CommandError("--purge-batch-size must be at least 1", EXIT_USAGE)
    if args.event_queue is not None and args.event_queue < 1:
        raise CommandError("--event-queue must be at least 1", EXIT_USAGE)
    host, port = parse_listen(args.listen)
    loopback = is_loopback(host)
    api_token, admin_token = serve_tokens(args)
    trace_url = args.trace_url
    if trace_url is not None and (
        not trace_url.startswith(("http://", "https://")) or "{trace_id}" not in trace_url
    ):
        raise CommandError(
            f"invalid --trace-url {trace_url!r}: an http(s) URL with {{trace_id}} in it",
            EXIT_USAGE,
        )
    if not loopback and not (api_token and admin_token):
        raise CommandError(
            f"refusing to listen on non-loopback {host}:{port} without --token and "
            f"--admin-token (or ${API_TOKEN_VARIABLE} and ${ADMIN_TOKEN_VARIABLE})",
            EXIT_USAGE,
        )
    _configure_logging()
    with open_from_args(args, unwritable_ok=True) as store:
        try:
            store.get_retention_days()  # unreachable database: fail now, in one line
        except StoreUnavailable:
            # An SQLite file on a read-only or full file system is not a startup
            # failure: serve starts not ready (/readyz says why) and works once it can.
            problem = _unwritable_store(store)
            if problem is None:
                raise
            logger.warning("chatdebug serve: %s; not ready until it can be written", problem)
        sock = _bind(host, port)
        metrics = Metrics(CollectorRegistry(auto_describe=True))
        events = (
            EventHub(store)
            if args.event_queue is None
            else EventHub(store, queue_size=args.event_queue)
        )
        events.start()
        state = ServerState(
            store=store,
            metrics=metrics,
            api_token=api_token,
            admin_token=admin_token,
            forced_enabled=truthy(os.environ.get(CHATDEBUG_ENABLED)),
            storage=_storage(store, args.spill_path),
            events=events,
            trace_url=trace_url,
        )

        def on_store_status(reason: str | None) -> None:
            if reason is None:
                state.readiness.mark_ready()
            else:
                state.readiness.mark_unready(reason)

        tickers: list[Ticker] = []
        if not args.no_purge:
            purger = Purger(
                store, metrics, batch_size=args.purge_batch_size, on_store_status=on_store_status
            )
            tickers.append(Ticker("purge", purge_interval, purger.tick))
        if not args.no_finalize:
            finalizer = StaleFinalizer(
                store, metrics, threshold=stale_threshold, on_store_status=on_store_status
            )
            tickers.append(Ticker("finalize-stale", stale_interval, finalizer.tick))
        where = (
            "loopback"
            if loopback
            else "reachable from other hosts; the read and admin tokens are required "
            "on every API call and both are set"
        )
        logger.info(
            "chatdebug serve: listening on http://%s:%d (%s); purge %s, stale finalizer %s",
            host if ":" not in host else f"[{host}]",
            port,
            where,
            "off" if args.no_purge else f"every {args.purge_interval}",
            "off" if args.no_finalize else f"every {args.stale_interval}",
        )
        try:
            with sock, _loops(tickers):
                _run_http(create_app(state), sock, events.close)
        finally:
            events.close()
            events.join()
        logger.info("chatdebug serve: stopped")
    return EXIT_OK


def _unwritable_store(store: Store) -> str | None:
    """Why an SQLite store's file cannot be written now (its file system read-only or
    full), or ``None``."""
    for what, path in _storage(store, None):
        if what == "SQLite store":
            return storage_problem(path, what)
    return None


def _storage(store: Store, spill_path: str | None) -> tuple[tuple[str, str], ...]:
    """The local files of the application whose file system ``/readyz`` checks."""
    files: list[tuple[str, str]] = []
    location = getattr(store, "location", None)
    if store.backend == "sqlite" and isinstance(location, str) and location != ":memory:":
        files.append(("SQLite store", location))
    spill = spill_path or os.environ.get(CHATDEBUG_SPILL_PATH, "").strip()
    if spill and spill.lower() not in ("off", "0", "false", "no", "none"):
        files.append(("spill journal", os.path.abspath(spill)))
    return tuple(files)


def _run_http(app: Any, sock: socket.socket, on_stop: Callable[[], None]) -> None:
    """Serve ``app`` on ``sock`` until SIGTERM or SIGINT; ``on_stop`` ends the streams
    that would otherwise hold the shutdown for their whole grace period."""
    import uvicorn

    from ..server import secure_h11_protocol

    class _Server(uvicorn.Server):
        # uvicorn re-raises a captured signal after shutting down, which would kill the
        # process with that signal instead of letting it close the store and exit 0.
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    # Open connections (a viewer following a run) get 5 s to finish before the exit.
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        http=secure_h11_protocol(),  # its own 400 for malformed HTTP has our headers too
    )
    server = _Server(config)

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("chatdebug serve: %s received, stopping", signal.Signals(signum).name)
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True
        on_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
