"""Order folders are named after buyers: the log filter puts a token where a folder's name would be."""

from __future__ import annotations

import logging
from pathlib import Path

from kaalwatch.logs import ScrubFilter, folder_token, redact_folders


def test_a_path_inside_an_order_folder_keeps_its_shape_but_not_the_name(tmp_path: Path) -> None:
    orders = tmp_path / "orders"
    name = "3012 Ada Lovelace - Pet portrait"
    text = f"cannot write {orders / name / 'order.yaml'}: disk full; also {orders / name / 'references' / 'x.jpg'}"
    out = redact_folders(text, orders)
    assert "Ada" not in out and out.count(folder_token(name)) == 2
    assert out.startswith(f"cannot write {orders}/{folder_token(name)}/order.yaml: disk full")


def test_a_path_ending_at_the_folder_is_matched_against_the_folders_that_exist(tmp_path: Path) -> None:
    orders = tmp_path / "orders"
    name = "3012 Grace: Hopper"  # a colon, like the one that follows a path in an error message
    (orders / name).mkdir(parents=True)
    assert redact_folders(f"cannot create {orders / name}: disk full", orders) == (
        f"cannot create {orders}/{folder_token(name)}: disk full")
    # A folder that is gone: the rest of the line goes with it, rather than risk a name.
    assert redact_folders(f"lost {orders}/3013 Alan Turing", orders) == (
        f"lost {orders}/{folder_token('3013 Alan Turing')}")


def test_the_filter_cleans_messages_and_tracebacks(tmp_path: Path) -> None:
    orders = tmp_path / "orders"
    path = orders / "9 Zoë Müller" / "v.png"
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", (str(path),), None)
    try:
        raise OSError(f"no such file: {path}")
    except OSError:
        import sys

        record.exc_info = sys.exc_info()
    ScrubFilter(orders).filter(record)
    assert "Zoë" not in record.getMessage() and "Zoë" not in (record.exc_text or "")
