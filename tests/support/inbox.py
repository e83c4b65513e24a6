"""A loopback HTTP server that keeps what is POSTed to it: the far end of apprise's ``json://`` target."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Inbox:
    """``json://127.0.0.1:{inbox.port}/`` delivers here; ``messages`` holds every JSON body received.

    ``refuse_first``: that many POSTs are answered 503 and not kept (a service having a bad minute);
    ``refused`` counts them.
    """

    def __init__(self, refuse_first: int = 0) -> None:
        self.messages: list[dict[str, Any]] = []
        self.refused = 0
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if inbox.refused < refuse_first:
                    inbox.refused += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                inbox.messages.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Inbox:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def titles(self) -> list[str]:
        return [str(m.get("title")) for m in self.messages]

    def text(self) -> str:
        return "\n".join(f"{m.get('title')} {m.get('message')}" for m in self.messages)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
