"""What may happen next to a job: every action offered is one the lifecycle accepts; the expected one is offered."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from kaalwatch import lifecycle, steps
from kaalwatch.errors import TransitionError
from kaalwatch.model import Deliverable, JobState, Order, Version, utcnow

S = JobState


def version(number: int) -> Version:
    return Version(number=number, source_name=f"v{number}.png", sha256=f"{number:064x}", size=10, saved_at=utcnow(),
                   copy=f"versions/x/v{number}.png", preview=f"previews/x/v{number}.jpg")


def order_in(make_order: Callable[..., Order], state: JobState) -> Order:
    """An order whose job reached ``state`` the way it does in real life, through the lifecycle."""
    order = make_order()
    job_id = order.jobs[0].job_id
    if state is S.AWAITING_REFERENCES:
        lifecycle.await_references(order, job_id)
        return order
    if state is S.NEW:
        return order
    lifecycle.add_version(order, job_id, version(1))
    path = {
        S.IN_PROGRESS: [],
        S.PROOF_SENT: [lambda o: lifecycle.send_proof(o, job_id, 1)],
        S.CHANGES_REQUESTED: [lambda o: lifecycle.send_proof(o, job_id, 1),
                              lambda o: lifecycle.record_answer(o, job_id, False, "bigger")],
        S.APPROVED: [lambda o: lifecycle.approve(o, job_id, 1)],
        S.READY_TO_DELIVER: [lambda o: lifecycle.approve(o, job_id, 1),
                             lambda o: lifecycle.mark_ready(o, job_id, [Deliverable("a.png", "png", 1, "0", 1)])],
        S.DELIVERED: [lambda o: lifecycle.approve(o, job_id, 1),
                      lambda o: lifecycle.mark_delivered(o, job_id, "etsy")],
        S.ON_HOLD: [lambda o: lifecycle.hold(o, job_id, "buyer away")],
        S.CANCELLED: [lambda o: lifecycle.cancel(o, "Etsy: Canceled")],
    }[state]
    for step in path:
        step(order)
    assert order.jobs[0].state is state
    return order


# What each action does through the lifecycle (the page's POSTs); copy-only actions change nothing.
DO: dict[str, Callable[[Order, str], None]] = {
    "send_proof": lambda o, j: lifecycle.send_proof(o, j, steps.proofable(o.job(j))[-1]),
    "answer": lambda o, j: lifecycle.record_answer(o, j, True),
    "approve": lambda o, j: lifecycle.approve(o, j, o.job(j).versions[-1].number),
    "build": lambda o, j: lifecycle.mark_ready(o, j, [Deliverable("a.png", "png", 1, "0", 1)]),
    "upload": lambda o, j: lifecycle.mark_delivered(o, j, "manual"),
    "hold": lambda o, j: lifecycle.hold(o, j),
    "resume": lambda o, j: lifecycle.reopen(o, j),
    "reopen": lambda o, j: lifecycle.reopen(o, j),
    "ask_photos": lambda o, j: None,
}


@pytest.mark.parametrize("state", list(JobState))
def test_every_offered_action_is_accepted_and_the_expected_one_is_offered(
        make_order: Callable[..., Order], state: JobState) -> None:
    order = order_in(make_order, state)
    job = order.jobs[0]
    view = steps.outlook(order, job)
    assert view.headline and view.group in steps.GROUPS
    assert view.expected is None or view.actions[0] == view.expected
    for action in view.actions:
        trial = copy.deepcopy(order)
        DO[action](trial, job.job_id)  # raises TransitionError if the page offered an illegal move


@pytest.mark.parametrize("state", list(JobState))
def test_moves_not_offered_are_refused_with_a_sentence(make_order: Callable[..., Order], state: JobState) -> None:
    order = order_in(make_order, state)
    offered = set(steps.outlook(order, order.jobs[0]).actions)
    # Offered exactly when legal: the buyer's answer, resuming, reopening — and a proof, where the lifecycle
    # refuses one (an approved job is not re-proofed as a next step, though the owner could do it by hand).
    candidates = {"answer", "resume", "reopen"} | ({"send_proof"} if steps.proofable(order.jobs[0]) and state
                                                   not in (S.APPROVED,) else set())
    if offered & {"resume", "reopen"}:  # one lifecycle move under two names (back from hold, or reopened)
        candidates -= {"resume", "reopen"}
    for action in candidates - offered:
        trial = copy.deepcopy(order)
        with pytest.raises(TransitionError, match=r"^Nothing was done: this item "):
            DO[action](trial, trial.jobs[0].job_id)


def test_cancelled_offers_no_work_and_says_so_loudly(make_order: Callable[..., Order]) -> None:
    order = order_in(make_order, S.CANCELLED)
    view = steps.outlook(order, order.jobs[0])
    assert view.actions == ("reopen",) and view.expected is None
    assert view.stop and "stop work" in view.stop and view.marker == "cancelled"
    order.etsy_status = "Fully Refunded"
    assert steps.outlook(order, order.jobs[0]).marker == "refunded"


def test_partial_refund_and_completed_without_approval_are_flagged(make_order: Callable[..., Order]) -> None:
    order = order_in(make_order, S.IN_PROGRESS)
    order.etsy_status = "Partially Refunded"
    view = steps.outlook(order, order.jobs[0])
    assert view.marker == "partially refunded" and "Partially refunded" in (view.stop or "")
    assert "send_proof" in view.actions  # the work may go on; the owner is told to check first
    order.etsy_status = "Completed"
    lifecycle.etsy_completed(order)
    view = steps.outlook(order, order.jobs[0])
    assert view.marker == "completed without approval" and "what the buyer received" in (view.stop or "")


def test_groups_follow_the_work(make_order: Callable[..., Order]) -> None:
    groups = {state: steps.outlook(o, o.jobs[0]).group
              for state in JobState for o in [order_in(make_order, state)]}
    assert groups == {S.AWAITING_REFERENCES: "waiting", S.NEW: "start", S.IN_PROGRESS: "proof",
                      S.PROOF_SENT: "waiting", S.CHANGES_REQUESTED: "save", S.APPROVED: "build",
                      S.READY_TO_DELIVER: "upload", S.DELIVERED: "done", S.ON_HOLD: "on_hold",
                      S.CANCELLED: "done"}


def test_after_changes_only_a_newer_version_can_be_proofed(make_order: Callable[..., Order]) -> None:
    order = order_in(make_order, S.CHANGES_REQUESTED)
    job = order.jobs[0]
    assert steps.proofable(job) == [] and "send_proof" not in steps.outlook(order, job).actions
    lifecycle.add_version(order, job.job_id, version(2))
    assert steps.proofable(job) == [2] and steps.outlook(order, job).expected == "send_proof"


def test_undo_window(make_order: Callable[..., Order]) -> None:
    from datetime import timedelta

    order = order_in(make_order, S.IN_PROGRESS)
    job_id = order.jobs[0].job_id
    lifecycle.approve(order, job_id, 1)
    event = lifecycle.undoable(order, job_id)
    assert event is not None and 10 <= lifecycle.undo_seconds_left(event) <= lifecycle.UNDO_SECONDS
    later = utcnow() + timedelta(seconds=lifecycle.UNDO_SECONDS + 1)
    assert lifecycle.undoable(order, job_id, now=later) is None and lifecycle.undo_seconds_left(event, now=later) == 0
    with pytest.raises(TransitionError, match="too old"):
        lifecycle.undo(order, job_id, now=later)
    lifecycle.undo(order, job_id)
    assert order.jobs[0].state is S.IN_PROGRESS and order.jobs[0].approved_version is None
