"""The job page (facts, answers, references, versions, compare, history, notes) and its actions.

Every action is a POST that changes the order only through ``ws.edit`` + one :mod:`kaalwatch.lifecycle`
function, with ``actor="review"``. A form carries the ``seen`` fingerprint of the job as the page showed
it; when the job changed in between (another tab, another device, the watcher), the action is refused
instead of silently acting on a state the owner never saw — so two simultaneous approvals of different
versions give one approval and one "changed meanwhile" message, never a silent overwrite.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from kaalwatch import lifecycle, steps
from kaalwatch.deliver_folder import built
from kaalwatch.delivery import etsy_order_url
from kaalwatch.errors import KaalwatchError, TransitionError
from kaalwatch.model import ERROR_SOURCES, Job, Order, Version, utcnow
from kaalwatch.retention import clock
from kaalwatch.settings import Settings
from kaalwatch.workflows import by_name
from review_app import history as history_words
from review_app.runtime import runtime

bp = Blueprint("job", __name__)
log = logging.getLogger("kaalwatch.review")

MAX_NOTE = 5000
MAX_KEEP_DAYS = 3650
# "Rescan now" waits at most this long for files still being written; the daemon's next rescan finds the rest.
RESCAN_MAX_WAIT = 10.0


def fingerprint(job: Job) -> str:
    """What an action's decision depends on; unrelated events (a preview finishing) do not change it."""
    return f"{job.state.value}:{job.approved_version}:{len(job.versions)}:{len(job.proofs)}:{job.revisions_used}"


def first_name(order: Order) -> str:
    name = (order.buyer_name or "").strip()
    if not name or name == order.pseudonym:
        return "there"
    return name.split()[0][:40]


def rounds_text(used: int, included: int) -> str:
    """The revisions line: never a negative count; beyond the included rounds it says so."""
    if used <= included:
        left = included - used
        return f"{used} used of {included} included ({left} left)"
    return f"{used} used — {used - included} beyond the {included} included"


def proof_message(order: Order, job: Job, settings: Settings, shop: str) -> str:
    """The text the owner pastes into Etsy Messages with a proof (rendered escaped, like all buyer text)."""
    included = by_name(settings.workflows, settings.default_workflow, job.workflow).revisions_included
    left = included - job.revisions_used
    if left > 0:
        rounds = f"you have {left} {'round' if left == 1 else 'rounds'} of changes included left"
    else:
        rounds = f"the {included} included {'round' if included == 1 else 'rounds'} of changes are used"
    return (
        f"Hi {first_name(order)}! Here is the proof of your {job.title} (order #{order.receipt_id}). "
        f"Reply \"approved\" if you love it, or tell me what you would like changed: "
        f"{rounds}. Thank you! — {shop}"
    )


@dataclass(frozen=True)
class ConflictPair:
    """A sync conflict on the page: the conflict copy's version and the other candidate (by original name)."""

    file: str
    original: str
    copy: Version | None
    other: Version | None


def conflict_pairs(job: Job) -> list[ConflictPair]:
    pairs: list[ConflictPair] = []
    for conflict in job.conflicts:
        copy = job.version(conflict.version) if conflict.version is not None else None
        original = conflict.original or conflict.file
        others = [v for v in job.versions if v is not copy]
        other = next((v for v in reversed(others) if v.source_name == original), others[-1] if others else None)
        pairs.append(ConflictPair(conflict.file, original, copy, other))
    return pairs


@dataclass(frozen=True)
class Compare:
    a: Version
    b: Version


def _version_arg(job: Job, name: str) -> Version | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 6:
        abort(404, f"no such version: {name}")
    version = job.version(int(raw))
    if version is None:
        abort(404, f"job {job.job_id} has no version {int(raw)}")
    return version


def _compare(job: Job) -> Compare | None:
    shown = [v for v in job.versions if v.preview]
    a = _version_arg(job, "a")
    b = _version_arg(job, "b")
    if a is None and b is None and len(shown) < 2:
        return None
    b = b or (shown[-1] if shown else job.latest)
    a = a or next((v for v in reversed(shown) if v.number != (b.number if b else None)), b)
    return Compare(a=a, b=b) if a and b else None


def _job_folder(order: Order, job: Job) -> Path:
    folder = runtime().ws.folder_of(order.receipt_id)
    return folder / job.folder if job.folder else folder


@bp.get("/jobs/<int:receipt_id>")
def order_page(receipt_id: int) -> Response:
    order = runtime().orders.load(receipt_id)
    if not order.jobs:
        abort(404, f"order {receipt_id} has no jobs")
    return redirect(url_for("job.page", receipt_id=receipt_id, job_id=order.jobs[0].job_id))


@bp.get("/jobs/<int:receipt_id>/<job_id>")
def page(receipt_id: int, job_id: str) -> str:
    rt = runtime()
    order = rt.orders.load(receipt_id)
    job = order.job(job_id)
    workflow = by_name(rt.settings.workflows, rt.settings.default_workflow, job.workflow)
    with_preview = [v for v in job.versions if v.preview]
    last_proof = job.proofs[-1] if job.proofs else None
    proofable = [v for v in with_preview if v.number in steps.proofable(job)]
    proof_version = proofable[-1] if proofable else None
    last_action = lifecycle.undoable(order, job.job_id)
    references = [(index, ref) for index, ref in enumerate(order.references) if ref.job_id in (None, job.job_id)]
    return render_template(
        "job.html",
        order=order,
        job=job,
        folder=_job_folder(order, job),
        rounds=rounds_text(job.revisions_used, workflow.revisions_included),
        compare=_compare(job),
        conflicts=conflict_pairs(job),
        proofable=proofable,
        proof_version=proof_version,
        view=steps.outlook(order, job),
        labels=steps.ACTION_LABELS,
        error_sources=ERROR_SOURCES,
        undo_event=last_action,
        undo_text=history_words.sentence(last_action) if last_action else None,
        undo_left=lifecycle.undo_seconds_left(last_action) if last_action else 0,
        photos_message=steps.photos_message(order, job, rt.settings.shop_name, first_name(order)),
        last_proof=last_proof,
        references=references,
        notes=[n for n in order.notes if n.job_id in (None, job.job_id)],
        history=history_words.lines(order.history, job.job_id if len(order.jobs) > 1 else None),
        etsy_url=etsy_order_url(rt.settings, receipt_id),
        message=proof_message(order, job, rt.settings, rt.settings.shop_name),
        seen=fingerprint(job),
        retention_due=clock.due(order, rt.settings, utcnow()),
    )


# --------------------------------------------------------------------------------------------------
# Actions


def _number(field: str) -> int:
    raw = request.form.get(field, "")
    if not raw.isdigit() or len(raw) > 6:
        abort(400, f"{field}: expected a version number")
    return int(raw)


def _back(receipt_id: int, job_id: str) -> Response:
    return redirect(url_for("job.page", receipt_id=receipt_id, job_id=job_id), code=303)


def _act(receipt_id: int, job_id: str, change: Callable[[Order, Job], object], done: str,
         *, check_seen: bool = True) -> Response:
    """Apply one lifecycle change under the order's lock; refusals become a message on the page."""
    seen = request.form.get("seen") if check_seen else None
    ws = runtime().ws
    try:
        with ws.edit(receipt_id) as order:
            job = order.job(job_id)
            if seen is not None and seen != fingerprint(job):
                raise TransitionError("this job changed since the page was shown; nothing was done — look again")
            before = built(order)
            change(order, job)
        # A job that stopped being ready (another version approved, reopened) left its old files in the folder
        # the owner uploads from: the workspace took them out on leaving the edit.
        removed = before - built(order)
    except TransitionError as exc:
        flash(str(exc), "error")
        return _back(receipt_id, job_id)
    log.info("review page: %s (order %s job %s)", done, receipt_id, job_id)
    if removed:
        done += f"; {len(removed)} file(s) built from the earlier approval were taken out of the deliver folder"
    flash(done[:1].upper() + done[1:] + ".", "ok")
    return _back(receipt_id, job_id)


def _act_on_version(receipt_id: int, job_id: str, move: Callable[[Order, str, int, str], None], done: str) -> Response:
    """A move naming the form's version: ``done`` may say ``{number}``."""
    number = _number("version")
    return _act(receipt_id, job_id, lambda order, job: move(order, job.job_id, number, "review"),
                done.format(number=number))


@bp.post("/jobs/<int:receipt_id>/<job_id>/proof")
def send_proof(receipt_id: int, job_id: str) -> Response:
    return _act_on_version(receipt_id, job_id, lifecycle.send_proof, "proof of version {number} recorded as sent")


@bp.post("/jobs/<int:receipt_id>/<job_id>/answer")
def answer(receipt_id: int, job_id: str) -> Response:
    verdict = request.form.get("answer")
    if verdict not in ("approved", "changes"):
        abort(400, "answer: expected approved or changes")
    note = request.form.get("note", "")[:MAX_NOTE].strip()
    settings = runtime().settings

    def change(order: Order, job: Job) -> None:
        included = by_name(settings.workflows, settings.default_workflow, job.workflow).revisions_included
        lifecycle.record_answer(order, job.job_id, verdict == "approved", note, "review",
                                included_revisions=included)

    done = "buyer's approval recorded" if verdict == "approved" else "buyer's change request recorded"
    return _act(receipt_id, job_id, change, done)


@bp.post("/jobs/<int:receipt_id>/<job_id>/approve")
def approve(receipt_id: int, job_id: str) -> Response:
    return _act_on_version(receipt_id, job_id, lifecycle.approve, "version {number} approved")


@bp.post("/jobs/<int:receipt_id>/<job_id>/conflict")
def resolve_conflict(receipt_id: int, job_id: str) -> Response:
    number = _number("version")
    file = request.form.get("file", "")[:1000]
    return _act(receipt_id, job_id,
                lambda order, job: lifecycle.resolve_conflict(order, job.job_id, file, number, "review"),
                f"version {number} kept as current; the sync conflict is resolved")


@bp.post("/jobs/<int:receipt_id>/<job_id>/hold")
def hold(receipt_id: int, job_id: str) -> Response:
    reason = request.form.get("reason", "")[:500].strip()
    return _act(receipt_id, job_id, lambda order, job: lifecycle.hold(order, job.job_id, reason, "review"),
                "put on hold")


@bp.post("/jobs/<int:receipt_id>/<job_id>/reopen")
def reopen(receipt_id: int, job_id: str) -> Response:
    return _act(receipt_id, job_id, lambda order, job: lifecycle.reopen(order, job.job_id, "review"),
                "back to work")


@bp.post("/jobs/<int:receipt_id>/<job_id>/undo")
def undo(receipt_id: int, job_id: str) -> Response:
    return _act(receipt_id, job_id, lambda order, job: lifecycle.undo(order, job.job_id, "review"),
                "undone: the item is back as it was")


@bp.post("/jobs/<int:receipt_id>/<job_id>/keep")
def keep(receipt_id: int, job_id: str) -> Response:
    raw = request.form.get("days", "")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_KEEP_DAYS:
        abort(400, f"days: expected 1 to {MAX_KEEP_DAYS}")
    until = utcnow() + timedelta(days=int(raw))
    reason = request.form.get("reason", "")[:500]
    return _act(receipt_id, job_id, lambda order, job: lifecycle.keep_until(order, until, reason, "review"),
                f"buyer data kept until {until:%Y-%m-%d}", check_seen=False)


@bp.post("/jobs/<int:receipt_id>/<job_id>/note")
def note(receipt_id: int, job_id: str) -> Response:
    text = request.form.get("text", "")[:MAX_NOTE]
    # A note never conflicts with a state change, so it is saved whatever happened meanwhile.
    return _act(receipt_id, job_id, lambda order, job: lifecycle.add_note(order, text, job.job_id, "review"),
                "note saved", check_seen=False)


@bp.post("/jobs/<int:receipt_id>/<job_id>/rescan")
def rescan(receipt_id: int, job_id: str) -> Response:
    rt = runtime()
    order = rt.orders.load(receipt_id)
    order.job(job_id)  # 404 for a job that does not exist, before any work
    from kaalwatch.watch import rescan_order  # the watcher's imports load when the owner asks, not with the page

    try:
        report = rescan_order(rt.ws, rt.settings, receipt_id, max_wait=RESCAN_MAX_WAIT)
    except KaalwatchError as exc:
        flash(f"Rescan failed: {exc}", "error")
        return _back(receipt_id, job_id)
    log.info("review page: rescanned order %s", receipt_id)
    flash(f"Rescanned: {report.summary()}", "ok")
    return _back(receipt_id, job_id)
