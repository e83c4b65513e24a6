"""The order's ``deliver/`` folder: the one place the artist uploads from (``Workspace.edit`` keeps it free of
stale files, see :mod:`kaalwatch.deliver_folder`)."""

from __future__ import annotations

from pathlib import Path

from kaalwatch.atomic import is_temp_name
from kaalwatch.store import DELIVER, Workspace


def deliver_dir(ws: Workspace, receipt_id: int) -> Path:
    """The one folder the artist uploads from: Etsy completes an order with all its files at once."""
    return ws.folder_of(receipt_id) / DELIVER


def visible_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and not is_temp_name(p.name))
