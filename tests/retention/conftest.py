"""Shared fixtures of the retention tests: a workspace logging to its file, and an order that lived fully."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kaalwatch import delivery, lifecycle, logs
from kaalwatch.model import Answer, Order, Reference, utcnow
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.delivery.conftest import add_version, approve, encode, noise, with_workflow

BUYER = "Zenobia Quartermaine"
ANSWER = "Mr Wigglesworth the third"
MESSAGE = "Please paint my late grandmother's garden"
GIFT = "Happy birthday Octavia"


@pytest.fixture
def logged(ws: Workspace) -> Iterator[Path]:
    """Log to the workspace's log file the way every command does; the file is searched afterwards."""
    logs.setup("debug", ws.logs_dir)
    yield ws.logs_dir / "kaalwatch.log"
    logs.remove_handlers()


@pytest.fixture
def lived(ws: Workspace, settings: Settings, make_order: Callable[..., Order]) -> Callable[..., Order]:
    """An order that went all the way: buyer references, three saves, v2 approved, delivered by hand."""

    def factory(*, deliver: bool = True) -> Order:
        order = make_order(buyer=BUYER, answers=[Answer(question="Pet's name", answer=ANSWER)])
        order.message_from_buyer, order.gift_message, order.is_gift = MESSAGE, GIFT, True
        rid, job_id = order.receipt_id, order.jobs[0].job_id
        upload = encode(noise(64, 48), "JPEG")
        thumb = ws.previews_dir / str(rid) / "references" / "ref-1-thumb.jpg"
        thumb.parent.mkdir(parents=True)
        thumb.write_bytes(encode(noise(16, 12), "JPEG"))
        order.references = [Reference(name=f"{BUYER} dog.jpg", source="buyer", job_id=None,
                                      url="https://i.etsystatic.com/x.jpg", label=f"photo of {ANSWER}",
                                      sha256=hashlib.sha256(upload).hexdigest(), size=len(upload),
                                      thumb=ws.relative_to_tool(thumb))]
        folder = ws.add_order(order)
        (folder / "references" / f"{BUYER} dog.jpg").write_bytes(upload)
        (folder / "references" / "dropped by artist.png").write_bytes(encode(noise(20, 20)))
        (folder / f"{BUYER} final.psd").write_bytes(b"8BPS layered work")
        (folder / "notes.txt").write_text(f"{BUYER} wants {ANSWER} smiling.\nUse warm colours.\n")
        (folder / "Zenobia sketches").mkdir()
        (folder / "Zenobia sketches" / "s1.png").write_bytes(encode(noise(10, 10)))
        for n in range(3):
            number = add_version(ws, rid, job_id, encode(noise(80 + n, 60)), source_name=f"{BUYER} v{n}.png")
            preview, small = ws.preview_paths(rid, job_id, number, "k")
            preview.parent.mkdir(parents=True, exist_ok=True)
            preview.write_bytes(b"preview")
            small.write_bytes(b"thumb")
            with ws.edit(rid) as current:
                lifecycle.update_version(current, job_id, number, preview=ws.relative_to_tool(preview),
                                         thumb=ws.relative_to_tool(small))
        approve(ws, rid, job_id, 2)
        if deliver:
            assert delivery.prepare(ws, with_workflow(settings, Promise(format="png")), rid).ok
            delivery.confirm_uploaded(ws, rid, manual=True)
        return ws.load(rid)

    return factory


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its content: the whole observable state of a workspace."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "index.sqlite"
            and "index.sqlite" not in p.name and "locks" not in p.parts and "logs" not in p.parts}


def later(days: int) -> datetime:
    return utcnow() + timedelta(days=days)


