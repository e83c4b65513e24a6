"""Retention's guarantees beyond the first purge: one critical section, a memory of what it removed, redaction
by whole words that keeps modes, every store scrubbed, an explicit "keep longer", and a daily record."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from kaalwatch import lifecycle, retention
from kaalwatch.errors import TransitionError
from kaalwatch.model import JobState, Order
from kaalwatch.retention.apply import CHANGED
from kaalwatch.retention.plan import Plan
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch.seen import SeenStore
from tests.delivery.conftest import add_version, encode, noise
from tests.retention.conftest import ANSWER, BUYER, later


def test_a_job_reopened_between_plan_and_apply_is_not_anonymised(
        ws: Workspace, settings: Settings, lived) -> None:
    order = lived()
    rid, job_id = order.receipt_id, order.jobs[0].job_id
    now = later(settings.retention.anonymise_days + 1)
    dry = retention.purge(ws, settings, now=now, dry_run=True)
    assert [o.receipt_id for o in dry.orders] == [rid]

    def reopen_meanwhile(plan: Plan) -> None:  # the owner presses "reopen" while retention is planning
        with ws.edit(plan.report.receipt_id) as current:
            lifecycle.reopen(current, job_id)

    report = retention.purge(ws, settings, now=now, before_apply=reopen_meanwhile)

    assert report.orders == [] and report.skipped == {rid: CHANGED} and not report.errors
    after = ws.load(rid)
    assert after.buyer_name == BUYER and after.anonymised_at is None and after.files_purged_at is None
    assert after.jobs[0].state is JobState.IN_PROGRESS
    assert (ws.folder_of(rid) / "references" / f"{BUYER} dog.jpg").exists()
    assert "anonymised 0" in report.summary()


def test_a_new_save_between_plan_and_apply_stops_the_purge(ws: Workspace, settings: Settings, lived) -> None:
    order = lived()
    rid, job_id = order.receipt_id, order.jobs[0].job_id
    report = retention.purge(ws, settings, now=later(settings.retention.files_days + 1),
                             before_apply=lambda _plan: add_version(ws, rid, job_id, encode(noise(9, 9))))
    assert report.skipped == {rid: CHANGED} and ws.load(rid).files_purged_at is None
    assert len(ws.load(rid).jobs[0].versions) == 4


def test_redaction_is_by_whole_words_and_keeps_the_note_mode(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order]) -> None:
    order = make_order(buyer="Sage Rivers")
    folder = ws.add_order(order)
    note = folder / "notes.md"
    note.write_text("Sage wants usage rights; SAGE's dog. Rivers-side, riverside.\n")
    note.chmod(0o600)
    with ws.edit(order.receipt_id) as current:
        lifecycle.cancel(current, "refunded")

    retention.purge(ws, settings, now=later(settings.retention.anonymise_days + 1))

    note = ws.folder_of(order.receipt_id) / "notes.md"  # in the renamed folder
    assert note.read_text() == "[removed] wants usage rights; [removed]'s dog. [removed]-side, riverside.\n"
    assert stat.S_IMODE(note.stat().st_mode) == 0o600


def test_what_comes_after_anonymisation_is_redacted_too(ws: Workspace, settings: Settings, lived) -> None:
    order = lived()
    rid, job_id = order.receipt_id, order.jobs[0].job_id
    first = retention.purge(ws, settings, now=later(settings.retention.anonymise_days + 1))
    assert [o.identity_removed for o in first.orders] == [True]
    memory_file = ws.secrets_dir / "retention" / f"{rid}.json"
    assert stat.S_IMODE(memory_file.stat().st_mode) == 0o600
    assert "zenobia" not in memory_file.read_text().casefold()  # hashes only
    # Later: the artist saves files named after the buyer, a sync client makes a conflict copy, notes quote.
    folder = ws.folder_of(rid)
    (folder / "Zenobia late.psd").write_bytes(b"8BPS")
    (folder / "thanks.txt").write_text("Quartermaine loved it; usage fine.\n")
    number = add_version(ws, rid, job_id, encode(noise(12, 12)), source_name="Zenobia Quartermaine v9.png")
    with ws.edit(rid) as current:
        lifecycle.update_version(current, job_id, number, paired_with="Zenobia late.psd")
        lifecycle.note_conflict(current, job_id, "Zenobia v9 (conflicted copy).png", original="Zenobia v9.png")
        lifecycle.note_conflict(current, job_id, "Zenobia v8 (conflicted copy).png", original="Zenobia v8.png")
        lifecycle.resolve_conflict(current, job_id, "Zenobia v8 (conflicted copy).png", number)  # a settled one
        lifecycle.add_note(current, f"{BUYER} called about {ANSWER}")

    again = retention.purge(ws, settings, now=later(settings.retention.anonymise_days + 2))

    assert [(o.identity_removed, o.redactions > 0) for o in again.orders] == [(False, True)]
    assert "anonymised 0" in again.summary() and "redacted 1" in again.summary()
    text = (folder / "order.yaml").read_text().casefold() + " ".join(p.name for p in folder.rglob("*")).casefold()
    for secret in ("zenobia", "quartermaine", "wigglesworth"):
        assert secret not in text, secret
    assert (folder / "redacted late.psd").exists() or (folder / "redacted.psd").exists()
    assert (folder / "thanks.txt").read_text() == "[removed] loved it; usage fine.\n"
    # A third run finds nothing left to do.
    assert retention.purge(ws, settings, now=later(settings.retention.anonymise_days + 3)).orders == []


def _bytes_of(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_watch_db_forgets_and_sqlite_files_keep_no_trace(ws: Workspace, settings: Settings, lived) -> None:
    order = lived()
    rid = order.receipt_id
    seen = SeenStore(ws.tool_dir / "watch.sqlite")
    seen.put_file(rid, f"{BUYER} final.psd", 17, 1, "abc")
    seen.put_file(rid, f"{BUYER} final.psd", 18, 2, "abd")  # replaced: the old row lingers in a free page
    seen.put_file(rid + 1, "other.png", 1, 1, "x")
    assert BUYER.encode() in _bytes_of(ws.tool_dir / "watch.sqlite")
    assert BUYER.encode() in _bytes_of(ws.index_path)

    retention.purge(ws, settings, now=later(settings.retention.anonymise_days + 1))

    assert seen.files_of(rid) == {} and seen.files_of(rid + 1) == {"other.png": (1, 1)}
    seen.close()
    for db in (ws.tool_dir / "watch.sqlite", ws.index_path):
        raw = _bytes_of(db)
        for secret in (BUYER, "Zenobia", "Quartermaine"):
            assert secret.encode() not in raw, (db.name, secret)


def test_keeping_longer_is_explicit_and_recorded(ws: Workspace, settings: Settings, lived) -> None:
    order = lived()
    rid = order.receipt_id
    now = later(settings.retention.anonymise_days + 1)
    with ws.edit(rid) as current, pytest.raises(TransitionError):
        lifecycle.keep_until(current, later(500), "  ")
    with ws.edit(rid) as current:
        lifecycle.keep_until(current, later(500), "chargeback dispute", actor="cli")
    report = retention.purge(ws, settings, now=now)
    assert report.orders == [] and report.skipped[rid].startswith("kept until ")
    assert [e.details["reason"] for e in ws.load(rid).history if e.event == "retention_kept"] == ["chargeback dispute"]
    done = retention.purge(ws, settings, now=later(501))
    assert [o.receipt_id for o in done.orders] == [rid] and ws.load(rid).anonymised_at


def test_the_daily_job_records_each_run_and_what_comes_next(ws: Workspace, settings: Settings, lived) -> None:
    lived()
    assert retention.missed(ws)
    report = retention.scheduled_purge(ws, settings, now=later(settings.retention.files_days + 1))
    state = ws.read_state("retention")
    assert state["summary"] == report.summary() and state["counts"]["files_purged"] == 1
    assert state["counts"]["anonymised"] == 0 and state["next"]["at"]
    assert not retention.missed(ws, later(settings.retention.files_days + 1))
    assert retention.missed(ws, later(settings.retention.files_days + 3))
    lines = retention.status_lines(ws)
    assert lines[0].startswith("retention: last ran ") and lines[1].startswith("retention next: ")
    assert BUYER not in json.dumps(state) and BUYER not in " ".join(lines)
