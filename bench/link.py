"""A TCP link that can be cut and measured: what an edge node's uplink goes through in the
edge benchmark and its tests (a mobile link, a tunnel).

`LinkProxy(target_port)` listens on a free loopback port and relays each connection to the
target. `cut()` closes every relayed connection and refuses new ones until `restore()`;
`up_bytes` and `down_bytes` count what went towards the target and back."""

from __future__ import annotations

import socket
import threading


class LinkProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up_bytes = self.down_bytes = 0
        self.connected = threading.Event()  # set while the link carries traffic
        self.connected.set()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="link:accept").start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.connected.is_set():
                client.close()  # the link is down: as if nothing answered
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data or not self.connected.is_set():
                    break
                sink.sendall(data)
                with self.lock:
                    if direction == "up":
                        self.up_bytes += len(data)
                    else:
                        self.down_bytes += len(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                hang_up(s)

    def cut(self) -> None:
        self.connected.clear()
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            hang_up(s)

    def restore(self) -> None:
        self.connected.set()

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


def hang_up(sock: socket.socket) -> None:
    """Ends a connection both ways at once (the peer sees it closed), then frees it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
