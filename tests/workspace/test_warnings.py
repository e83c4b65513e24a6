"""Every kind of warning has a source and clears itself when its cause is gone — on the job, in the index
(which the list and ``kaalwatch status`` read) and in what ``status --json`` prints.

The real-cause flows live next to their producers: an unreadable save replaced by a good one
(tests/watch/test_save_patterns.py), a failed download fetched later (tests/sync/test_sync.py), a build
that works the second time (tests/delivery/test_prepare.py), a misplaced file moved and rescanned
(tests/watch/test_reconcile.py::test_misplaced_warning_clears_after_the_file_is_moved_and_rescanned).
These tests pin the rules the lifecycle applies for the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from kaalwatch import lifecycle
from kaalwatch.manifest import order_from_dict, order_to_dict
from kaalwatch.model import Deliverable, JobState, Order, Version, utcnow
from kaalwatch.store import Workspace


def version(number: int) -> Version:
    return Version(number=number, source_name=f"v{number}.png", sha256=f"{number:064x}", size=10, saved_at=utcnow(),
                   copy=f"versions/x/v{number}.png", preview=f"previews/x/v{number}.jpg")


def warnings_in_index(ws: Workspace, receipt_id: int) -> list[tuple[str, str]]:
    return [w for row in ws.jobs(limit=10_000) if row.receipt_id == receipt_id for w in row.errors]


def test_a_warning_is_kept_per_source_and_cleared_only_by_its_source(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job_id = order.jobs[0].job_id
    lifecycle.set_error(order, job_id, "2 reference files could not be fetched", "sync", source="download")
    lifecycle.set_error(order, job_id, "'a.png' cannot be read as an image", "watcher")
    assert order.jobs[0].errors == {"download": "2 reference files could not be fetched",
                                    "watcher": "'a.png' cannot be read as an image"}
    lifecycle.set_error(order, job_id, None, "watcher")  # a good save clears the watcher's, not the download's
    assert order.jobs[0].errors == {"download": "2 reference files could not be fetched"}
    assert [(e.event, e.details["source"]) for e in order.history] == [
        ("error", "download"), ("error", "watcher"), ("error_cleared", "watcher")]


def test_build_problem_clears_when_the_approval_it_was_about_is_gone(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job_id = order.jobs[0].job_id
    lifecycle.add_version(order, job_id, version(1))
    lifecycle.approve(order, job_id, 1)
    lifecycle.set_error(order, job_id, "cannot deliver: too large", "delivery")
    lifecycle.hold(order, job_id)  # a hold keeps it: the approval still stands
    lifecycle.reopen(order, job_id)
    assert "delivery" in order.jobs[0].errors
    lifecycle.add_version(order, job_id, version(2))  # a newer save clears the approval, and the problem with it
    assert order.jobs[0].state is JobState.IN_PROGRESS and order.jobs[0].errors == {}


def test_completed_without_approval_clears_once_delivered(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job_id = order.jobs[0].job_id
    lifecycle.add_version(order, job_id, version(1))
    lifecycle.etsy_completed(order)
    assert "etsy" in order.jobs[0].errors
    lifecycle.approve(order, job_id, 1)
    assert "etsy" in order.jobs[0].errors  # still worth checking until the owner confirms what was sent
    lifecycle.mark_ready(order, job_id, [Deliverable(name="a.png", format="png", size=1, sha256="0", from_version=1)])
    lifecycle.mark_delivered(order, job_id, confirmed_by="manual", actor="review")
    assert order.jobs[0].errors == {}


def test_legacy_sticky_error_is_dropped_on_load(make_order: Callable[..., Order]) -> None:
    plain = order_to_dict(make_order())
    plain["schema"] = 1  # written before warnings had sources (kaalwatch.migrations.migrate_1_to_2)
    plain["last_error"] = "sync: old"
    plain["flags"] = ["shipment_refused"]
    plain["jobs"][0]["last_error"] = "download: old"
    plain["jobs"][0]["flags"] = ["completed_without_approval"]
    order = order_from_dict(plain)
    assert order.errors == {} and order.jobs[0].errors == {} and "last_error" not in order.extra


def test_index_and_status_show_a_warning_until_it_clears(ws: Workspace, make_order: Callable[..., Order],
                                                         capsys) -> None:  # type: ignore[no-untyped-def]
    from kaalwatch.commands.workspace import job_summary

    made = make_order()
    ws.add_order(made)
    job_id = made.jobs[0].job_id
    with ws.edit(made.receipt_id) as order:
        lifecycle.set_error(order, job_id, "'a.png' cannot be read as an image", "watcher")
        lifecycle.set_error(order, None, "'stray.png' is at the top of an order", "watcher")
    assert warnings_in_index(ws, made.receipt_id) == [("watcher", "'a.png' cannot be read as an image"),
                                                      ("watcher", "'stray.png' is at the top of an order")]
    row = next(r for r in ws.jobs() if r.receipt_id == made.receipt_id)
    summary = job_summary(row, ws.settings, utcnow())
    assert [w["source"] for w in summary["warnings"]] == ["watcher", "watcher"]
    with ws.edit(made.receipt_id) as order:
        lifecycle.set_error(order, job_id, None, "watcher")
        lifecycle.set_error(order, None, None, "watcher")
    assert warnings_in_index(ws, made.receipt_id) == []
    row = next(r for r in ws.jobs() if r.receipt_id == made.receipt_id)
    assert json.loads(json.dumps(job_summary(row, ws.settings, utcnow())))["warnings"] == []
