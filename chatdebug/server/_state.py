"""What the HTTP side of ``chatdebug serve`` shares: the store, the metrics registry, the
tokens, and whether the store was reachable at the last check."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from ..metrics import Metrics
from ..store import Store

__all__ = ["Readiness", "ServerState"]


class Readiness:
    """Whether the store answered its last check, and why not when it did not.

    The purge and stale loops report here after every tick, and ``/readyz`` asks the store
    itself; a reason of ``None`` means ready. Thread-safe: loops run in threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None

    def mark_ready(self) -> None:
        """The store answered."""
        with self._lock:
            self._reason = None

    def mark_unready(self, reason: str) -> None:
        """The store did not answer; ``reason`` is one line for ``/readyz``."""
        with self._lock:
            self._reason = " ".join(reason.split()) or "store unreachable"

    @property
    def reason(self) -> str | None:
        """Why the store is not ready, or ``None`` when it is."""
        with self._lock:
            return self._reason


@dataclass
class ServerState:
    """Everything the routes of ``chatdebug serve`` need.

    Attributes:
        store: the store every route reads through.
        metrics: the metrics the loops update; ``/metrics`` exposes ``metrics.registry``.
        api_token: bearer token for reads (``None``: loopback clients only).
        admin_token: bearer token for writes (``None``: loopback clients only).
        forced_enabled: recording is forced on by the deployment (settings are read-only).
        readiness: the last known reachability of the store.
    """

    store: Store
    metrics: Metrics
    api_token: str | None = None
    admin_token: str | None = None
    forced_enabled: bool = False
    readiness: Readiness = field(default_factory=Readiness)

    @property
    def registry(self) -> CollectorRegistry:
        """The registry ``/metrics`` exposes."""
        return self.metrics.registry
