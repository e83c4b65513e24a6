"""The waitress server on its own thread: real sockets, a real port, a clean stop; and ``set-password``."""

from __future__ import annotations

import http.client
import os
import socket
import sys

import pytest
from click.testing import CliRunner
from flask import Flask

from kaalwatch.cli import cli
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import security
from review_app.server import ReviewServer


def get(server: ReviewServer, path: str, host: str | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers={"Host": host or f"127.0.0.1:{server.port}"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_serves_on_a_real_port_and_stops(app: Flask) -> None:
    server = ReviewServer(app, "127.0.0.1", 0).start()
    port = server.port
    try:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/"
        response = get(server, "/login")
        assert response.status == 200
        assert response.getheader("Server") == "kaalwatch"
        assert response.getheader("X-Frame-Options") == "DENY"
        # The real port joined the Host allow-list; another port or name did not.
        assert get(server, "/login", host=f"localhost:{server.port}").status == 200
        assert get(server, "/login", host="localhost:1").status == 400
        assert get(server, "/login", host=f"evil.example:{server.port}").status == 400
    finally:
        server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_stop_with_an_open_keep_alive_connection(app: Flask) -> None:
    with ReviewServer(app, "127.0.0.1", 0) as server:
        port = server.port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/login", headers={"Host": f"127.0.0.1:{port}"})
        assert conn.getresponse().read()
        # the connection stays open while the server stops
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    conn.close()


def test_stop_when_the_loops_wake_up_pipe_is_already_closed(app: Flask) -> None:
    server = ReviewServer(app, "127.0.0.1", 0).start()
    assert get(server, "/login").status == 200
    running = server._server
    thread = server._thread
    assert running is not None and thread is not None
    os.close(running.trigger.trigger)  # the write end the stop would wake the loop through
    server.stop(timeout=10)
    assert not thread.is_alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", running.effective_port), timeout=2):
        pass


def test_port_in_use_is_a_clear_error(app: Flask) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(Exception, match="cannot listen"):
            ReviewServer(app, "127.0.0.1", taken.getsockname()[1]).start()


# ----------------------------------------------------------------------------------- set-password


@pytest.fixture
def config(settings: Settings, ws: Workspace, tmp_path) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_text(f"workspace: {str(ws.root)!r}\n")
    return str(path)


def test_set_password_from_stdin(config: str, ws: Workspace) -> None:
    result = CliRunner().invoke(cli, ["--config", config, "set-password", "--stdin"], input="a long password\n")
    assert result.exit_code == 0, result.output
    assert "Password set" in result.output and "a long password" not in result.output
    assert security.verify_password(ws, "a long password")


def test_set_password_prompts_twice(config: str, ws: Workspace) -> None:
    result = CliRunner().invoke(cli, ["--config", config, "set-password"],
                                input="first password\nsecond password\nfirst password\nfirst password\n")
    assert result.exit_code == 0, result.output
    assert "Repeat it" in result.output and "first password" not in result.output
    assert security.verify_password(ws, "first password")


def test_set_password_refuses_short(config: str, ws: Workspace) -> None:
    from kaalwatch.cli import main

    old = sys.stdin
    try:
        sys.stdin = __import__("io").StringIO("short\n")
        assert main(["--config", config, "set-password", "--stdin"]) == 2
    finally:
        sys.stdin = old
    assert security.password_hash(ws) is None
