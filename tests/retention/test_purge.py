"""The retention promise: references and unused versions deleted, then the order anonymised; nothing else."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from kaalwatch import lifecycle, retention
from kaalwatch.model import JobState, Order, utcnow
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.delivery.conftest import add_version, encode, noise
from tests.retention.conftest import ANSWER, BUYER, GIFT, MESSAGE, later, tree


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
    ws.secrets.salt()
    before = tree(ws.root)

    dry = retention.purge(ws, settings, now=now, dry_run=True)

    assert tree(ws.root) == before
    real = retention.purge(ws, settings, now=now)
    # The dry run's plan is what the real run did: the same orders, lines and skips.
    assert (dry.orders, dry.skipped) == (real.orders, real.skipped) and dry.orders and not real.errors
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
        rid, ws.secrets.salt())
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
    first = ws.secrets.salt()
    assert ws.secrets.salt() == first and len(first) == 64
    assert stat.S_IMODE((ws.secrets_dir / "pseudonym_salt").stat().st_mode) == 0o600


def test_open_and_on_hold_orders_wait_for_their_clock_then_go(
        ws: Workspace, settings: Settings, lived, make_order: Callable[..., Order]) -> None:
    open_order = lived(deliver=False)  # approved, never delivered, never finished on Etsy: abandoned
    held = make_order(jobs=2, buyer=BUYER)
    ws.add_order(held)
    for job in held.jobs:
        add_version(ws, held.receipt_id, job.job_id, encode(noise(30, 30)))
    with ws.edit(held.receipt_id) as current:
        lifecycle.cancel(current, "refund of one item")  # both jobs finished...
        lifecycle.reopen(current, held.jobs[1].job_id)
        lifecycle.hold(current, held.jobs[1].job_id, "buyer asked to wait")  # ...then one put on hold
    before = tree(ws.root)
    r = settings.retention

    quiet = retention.purge(ws, settings, now=later(r.abandoned_days - 8))
    assert quiet.orders == [] and quiet.active == 2 and quiet.warnings == {} and tree(ws.root) == before
    warned = retention.purge(ws, settings, now=later(r.abandoned_days - 3))
    assert warned.orders == [] and set(warned.warnings) == {open_order.receipt_id, held.receipt_id}
    assert tree(ws.root) == before

    gone = retention.purge(ws, settings, now=later(r.abandoned_days + 1))

    assert sorted(o.receipt_id for o in gone.orders) == sorted([open_order.receipt_id, held.receipt_id])
    assert all(o.basis == "no activity" and o.identity_removed for o in gone.orders) and not gone.errors
    for rid in (open_order.receipt_id, held.receipt_id):
        assert ws.load(rid).anonymised_at and BUYER not in ws.load(rid).buyer_name
        assert not [p for p in (ws.versions_dir / str(rid)).rglob("*") if p.is_file()]


def test_on_hold_order_finished_on_etsy_counts_from_then(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order]) -> None:
    order = make_order(buyer=BUYER)
    ws.add_order(order)
    job_id = order.jobs[0].job_id
    add_version(ws, order.receipt_id, job_id, encode(noise(30, 30)))
    with ws.edit(order.receipt_id) as current:
        lifecycle.hold(current, job_id, "waiting for the buyer")
        lifecycle.set_etsy_status(current, "Completed")
        lifecycle.etsy_completed(current)  # Etsy completed it: flagged here, still on hold
    r = settings.retention
    assert retention.purge(ws, settings, now=later(r.files_days - 1)).orders == []
    files = retention.purge(ws, settings, now=later(r.files_days + 1))
    assert [(o.receipt_id, o.files_step, o.identity_removed) for o in files.orders] == [
        (order.receipt_id, True, False)]
    assert "files purged 1, anonymised 0" in files.summary()  # counts what happened, no more
    named = retention.purge(ws, settings, now=later(r.anonymise_days + 1))
    assert [o.identity_removed for o in named.orders] == [True] and "anonymised 1" in named.summary()
    after = ws.load(order.receipt_id)
    assert after.jobs[0].state is JobState.ON_HOLD and BUYER not in after.buyer_name


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
