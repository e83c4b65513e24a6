"""The browser tests let a tile's 503 "ask again" pass; the rule must match the URLs the page really asks for."""

from __future__ import annotations

from flask import Flask, url_for

from tests.support.browser import _is_tile


def test_the_tile_rule_matches_the_tile_route_and_nothing_else(app: Flask) -> None:
    with app.test_request_context():
        tile = url_for("tiles.tile", receipt_id=3012345678, job_id="4001", number=2, level=5, x=3, y=7,
                       _external=True)
        preview = url_for("files.version_file", receipt_id=3012345678, job_id="4001", number=2, kind="preview",
                          _external=True)
    assert _is_tile(tile)
    assert not _is_tile(preview)
    assert not _is_tile("http://127.0.0.1:8470/jobs/3012345678/4001")
