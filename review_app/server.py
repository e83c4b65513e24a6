"""Serving the review page with waitress on its own thread, with a clean stop (never Flask's dev server)."""

from __future__ import annotations

import contextlib
import logging
import threading

from flask import Flask
from waitress.server import BaseWSGIServer, create_server

from kaalwatch.errors import ConfigError
from kaalwatch.loopback import is_loopback_host
from review_app import security
from review_app.runtime import runtime

log = logging.getLogger("kaalwatch.review")


class ReviewServer:
    """``ReviewServer(app, host, port).start()`` listens at once (``.port`` is the real one when 0 was
    asked) and serves on a background thread until ``.stop()``."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, *, threads: int = 4) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.threads = threads
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._check()

    def _check(self) -> None:
        """A page reachable from other machines must never be served without a password."""
        if is_loopback_host(self.host):
            return
        with self.app.app_context():
            have_password = security.password_hash(runtime().ws) is not None
        if not self.app.config.get("KAALWATCH_AUTH_REQUIRED") or not have_password:
            raise ConfigError(
                f"the review page would listen on {self.host} without a password",
                hint="run `kaalwatch set-password` and keep review.require_password on, or bind to 127.0.0.1",
            )

    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        name = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{name}:{self.port}/"

    def start(self) -> ReviewServer:
        if self._server is not None:
            return self
        try:
            server = create_server(
                self.app, host=self.host.strip("[]"), port=self.requested_port, threads=self.threads,
                ident="kaalwatch", expose_tracebacks=False, clear_untrusted_proxy_headers=True,
                channel_timeout=30,
            )
        except OSError as exc:
            raise ConfigError(f"the review page cannot listen on {self.host}:{self.requested_port}: "
                              f"{exc.strerror or exc}", hint="choose another review.port") from None
        self._server = server  # one address: never the multi-socket server
        # The Host allow-list learns the real port (port 0 in tests) and an explicitly bound address.
        policy: security.HostPolicy = self.app.extensions["kaalwatch_hosts"]
        policy.ports.add(self.port)
        if not is_loopback_host(self.host) and self.host not in ("0.0.0.0", "::"):  # noqa: S104
            policy.names.add(self.host.lower() if ":" not in self.host else f"[{self.host.strip('[]')}]")
        self._thread = threading.Thread(target=server.run, name="review-server", daemon=True)
        self._thread.start()
        log.info("review page at %s", self.url)
        return self

    def _close_all(self) -> None:
        # Runs inside the server's loop thread (via the trigger): closing every channel, the listening
        # socket and the trigger empties the loop's map, so ``run()`` returns.
        server = self._server
        assert server is not None
        # The trigger first: the server's own close() closes it too, and one whose pipe is already gone
        # raises there, which would keep the server in the map and the loop running.
        for dispatcher in [server.trigger, *(d for d in list(server._map.values()) if d is not server.trigger)]:
            with contextlib.suppress(OSError):  # one already closed must not keep the rest open
                dispatcher.close()
        server._map.clear()  # whatever failed to leave the map: the loop ends on an empty one

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        try:
            server.trigger.pull_trigger(self._close_all)
        except OSError as exc:
            # The loop's wake-up pipe is already closed (CI saw EBADF here once): close everything from this
            # thread instead; the loop finds its map empty within its poll timeout (1 s) and returns.
            log.warning("review page: could not wake the server loop (%s); closing it from here",
                        exc.strerror or exc)
            self._close_all()
        thread.join(timeout)
        server.task_dispatcher.shutdown(timeout=timeout)
        if thread.is_alive():
            log.warning("review page: the server thread did not stop within %s s", timeout)
        self._server = None
        self._thread = None
        log.info("review page stopped")

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
