"""A TCP proxy on loopback that breaks its connections on command: for link faults.

The daemon dials the proxy, the proxy dials the PBX. ``stall()`` makes every connection
open now go silent in both directions while its sockets stay open (a hung switch, a
black-holed route: no FIN, no RST, nothing); ``half_close()`` sends the daemon a FIN
as if the PBX had shut its writing side, the other direction left open. Connections
made afterwards (the daemon's reconnect) pass through untouched, so a test sees the
link come back. Threads and blocking sockets: it runs beside the reactor, not on it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

__all__ = ["FaultProxy"]

_POLL = 0.05


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        #: Whether bytes flow towards the daemon (True) and towards the PBX (False).
        self.flows = {True: True, False: True}
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.close()


class FaultProxy:
    """Listens on 127.0.0.1 (a free port: ``port``) and forwards to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        #: How many connections the proxy accepted so far (a reconnect adds one).
        self.connections = 0
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    # -- faults ---------------------------------------------------------------------------

    def stall(self) -> None:
        """The open connections stop carrying bytes, both ways; nothing is closed."""
        with self._lock:
            for pair in self._pairs:
                pair.flows = {True: False, False: False}

    def half_close(self) -> None:
        """The daemon's side of the open connections gets a FIN (the PBX "stopped
        writing"); what the daemon sends still reaches the PBX."""
        with self._lock:
            for pair in self._pairs:
                pair.flows[True] = False
                with contextlib.suppress(OSError):
                    pair.client.shutdown(socket.SHUT_WR)

    # -- plumbing -------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
                self.connections += 1
            for src, dst, towards in ((client, upstream, False), (upstream, client, True)):
                src.settimeout(_POLL)
                threading.Thread(
                    target=self._pump, args=(pair, src, dst, towards), daemon=True
                ).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket, towards: bool) -> None:
        """Copy ``src`` to ``dst`` (``towards``: to the daemon) while that way flows; a
        stalled way reads nothing more, so its bytes stay in the kernel's buffers."""
        while not pair.closed and not self._stopped.is_set():
            if not pair.flows[towards]:
                time.sleep(_POLL)
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                break
            if not pair.flows[towards]:
                continue  # stalled between the read and the write: never delivered
            try:
                dst.sendall(data)
            except OSError:
                break
        if not towards:  # the daemon closed its side (or it broke): so does the PBX's
            pair.close()

    def close(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for pair in self._pairs:
                pair.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
