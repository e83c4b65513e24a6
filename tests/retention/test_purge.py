"""The retention promise: references and unused versions deleted, then the order anonymised; nothing else."""

from __future__ import annotations

import hashlib
import logging
import stat
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from kaalwatch import delivery, lifecycle, logs, retention
from kaalwatch.model import Answer, JobState, Order, Reference, utcnow
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
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_kaalwatch", False):
            root.removeHandler(handler)
            handler.close()


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


def later(days: int) -> object:
    return utcnow() + timedelta(days=days)


def test_nothing_happens_before_the_retention_time(ws: Workspace, settings: Settings, lived) -> None:
    lived()
    before = tree(ws.root)
    report = retention.purge(ws, settings, now=later(settings.retention.files_days - 1))
    assert report.orders == [] and tree(ws.root) == before


def test_files_step_deletes_references_and_unused_versions_only(
        ws: Workspace, settings: Settings, lived) -> None:
    order = lived()
    rid, job = order.receipt_id, order.jobs[0]
    folder = ws.folder_of(rid)
    kept = job.version(2)

    report = retention.purge(ws, settings, now=later(settings.retention.files_days + 1))

    [done] = report.orders
    assert done.receipt_id == rid and not report.errors
    assert list((folder / "references").iterdir()) == []
    assert sorted(p.name for p in (ws.versions_dir / str(rid)).rglob("*") if p.is_file()) == [
        Path(kept.copy).name]
    assert {p for p in (ws.previews_dir / str(rid)).rglob("*") if p.is_file()} == {
        ws.tool_path(kept.preview), ws.tool_path(kept.thumb)}
    assert (folder / "deliver").is_dir() and len(list((folder / "deliver").iterdir())) == 1
    assert (folder / f"{BUYER} final.psd").exists()  # the artist's own work is not buyer data
    after = ws.load(rid)
    assert after.files_purged_at is not None and after.anonymised_at is None
    assert [r.status for r in after.references] == ["deleted"] and after.references[0].thumb is None
    assert [v.copy == "" for v in after.jobs[0].versions] == [True, False, True]
    assert "reference #1 (buyer, sha256" in done.removed[0]
    assert any(line.startswith("unlisted file #1 in references/") for line in done.removed)
    # Run again: nothing more to do.
    assert retention.purge(ws, settings, now=later(settings.retention.files_days + 2)).orders == []


def test_dry_run_reports_exactly_what_purge_then_does(ws: Workspace, settings: Settings, lived) -> None:
    lived()
    now = later(settings.retention.anonymise_days + 1)
    retention.pseudonym_salt(ws)
    before = tree(ws.root)

    dry = retention.purge(ws, settings, now=now, dry_run=True)

    assert tree(ws.root) == before
    real = retention.purge(ws, settings, now=now)
    assert dry.plan() == real.plan() and dry.orders and not real.errors
    assert tree(ws.root) != before


def _everything_text(ws: Workspace, log_file: Path) -> str:
    parts = [log_file.read_text(encoding="utf-8")]
    for path in ws.root.rglob("*"):
        parts.append(path.relative_to(ws.root).as_posix())  # every name, folders included
        if path.is_file() and path.suffix in (".yaml", ".txt", ".md", ".json", ".log"):
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


def test_anonymised_order_keeps_no_personal_data_anywhere(
        ws: Workspace, settings: Settings, lived, logged: Path) -> None:
    order = lived()
    rid = order.receipt_id
    text = _everything_text(ws, logged)
    assert BUYER in text and ANSWER in text  # the search below can find them when they are there

    report = retention.purge(ws, settings, now=later(settings.retention.anonymise_days + 1))

    assert not report.errors, report.errors
    text = _everything_text(ws, logged)
    for secret in (BUYER, "Zenobia", "Quartermaine", ANSWER, MESSAGE, GIFT):
        assert secret.casefold() not in text.casefold(), secret
    after = ws.load(rid)
    assert after.anonymised_at and after.buyer_name == after.pseudonym == lifecycle.pseudonym_for(
        rid, retention.pseudonym_salt(ws))
    assert ws.folder_of(rid).name.startswith(f"{rid} {after.pseudonym}")
    # Still there for history and statistics: ids, dates, listing, states.
    assert after.receipt_id == rid and after.ordered_at == order.ordered_at
    assert after.jobs[0].title == order.jobs[0].title and after.jobs[0].state is JobState.DELIVERED
    assert [e.event for e in after.history if e.event in ("approved", "delivered")] == ["approved", "delivered"]
    [row] = [r for r in ws.jobs(states={JobState.DELIVERED}) if r.receipt_id == rid]
    assert row.buyer == after.pseudonym
    notes = (ws.folder_of(rid) / "notes.txt").read_text()
    assert "Use warm colours." in notes and "[removed]" in notes  # the artist's note kept, buyer text gone


def test_pseudonym_salt_is_private_and_stable(ws: Workspace) -> None:
    first = retention.pseudonym_salt(ws)
    assert retention.pseudonym_salt(ws) == first and len(first) == 64
    assert stat.S_IMODE((ws.secrets_dir / "pseudonym_salt").stat().st_mode) == 0o600


def test_orders_on_hold_or_open_are_never_touched(
        ws: Workspace, settings: Settings, lived, make_order: Callable[..., Order]) -> None:
    open_order = lived(deliver=False)  # approved, not delivered
    held = make_order(jobs=2, buyer=BUYER)
    ws.add_order(held)
    for job in held.jobs:
        add_version(ws, held.receipt_id, job.job_id, encode(noise(30, 30)))
    with ws.edit(held.receipt_id) as current:
        lifecycle.cancel(current, "refund of one item")  # both jobs finished...
        lifecycle.reopen(current, held.jobs[1].job_id)
        lifecycle.hold(current, held.jobs[1].job_id, "buyer asked to wait")  # ...then one put on hold
    before = tree(ws.root)

    report = retention.purge(ws, settings, now=later(10_000))

    assert report.orders == [] and report.skipped == {held.receipt_id: "on hold"} and report.active == 1
    assert tree(ws.root) == before
    assert ws.load(open_order.receipt_id).buyer_name == BUYER


def test_cancelled_order_loses_every_version_copy(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order]) -> None:
    order = make_order()
    ws.add_order(order)
    add_version(ws, order.receipt_id, order.jobs[0].job_id, encode(noise(30, 30)))
    with ws.edit(order.receipt_id) as current:
        lifecycle.cancel(current, "refunded")
    report = retention.purge(ws, settings, now=later(settings.retention.files_days + 1))
    assert [o.receipt_id for o in report.orders] == [order.receipt_id]
    assert not [p for p in (ws.versions_dir / str(order.receipt_id)).rglob("*") if p.is_file()]


def test_scheduled_purge_remembers_its_run(ws: Workspace, settings: Settings, lived) -> None:
    lived()
    report = retention.scheduled_purge(ws, settings, now=later(settings.retention.files_days + 1))
    state = ws.read_state("retention")
    assert state["summary"] == report.summary() and "removed" in state["summary"]
    nxt = retention.next_run(settings, utcnow())
    assert nxt.hour == settings.retention.run_hour and nxt > utcnow()
