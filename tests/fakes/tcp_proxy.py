"""A real TCP proxy on 127.0.0.1 that can be stopped and started to cut a connection.

Stopping closes the listening socket (new connections are refused) and every live
connection (clients see the server go away mid-session); starting again listens on the
same port, so a URL pointing at the proxy stays valid::

    with TCPProxy("127.0.0.1", 5432) as proxy:
        url = proxy.rewrite_url("postgresql://postgres@127.0.0.1:5432/test")
        ...
        proxy.stop()   # the database is "down"
        proxy.start()  # and back
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
from types import TracebackType

__all__ = ["TCPProxy"]

_CHUNK = 65536


class TCPProxy:
    """Forward connections from ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self.start()

    @property
    def running(self) -> bool:
        return self._listener is not None

    def rewrite_url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parts = urllib.parse.urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def start(self) -> None:
        """Listen again (on the same port after the first start). No-op when running."""
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)  # lets the accept loop notice stop()
        self.port = listener.getsockname()[1]
        self._stop = threading.Event()
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, args=(listener, self._stop), daemon=True
        )
        self._accept_thread.start()

    def stop(self) -> None:
        """Refuse new connections and cut every live one. No-op when stopped."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stop.set()
        if self._accept_thread is not None:
            self._accept_thread.join()
        listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _close(conn)

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> TCPProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept_loop(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if stop.is_set():
                    _close(client)
                    _close(upstream)
                    return
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(_CHUNK):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
