"""Every legal and illegal move of a job, and the operations built on them."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import pytest

from kaalwatch import lifecycle
from kaalwatch.errors import NotFoundError, TransitionError
from kaalwatch.lifecycle import TRANSITIONS, can_move
from kaalwatch.lifecycle.moves import _move
from kaalwatch.model import Deliverable, JobState, Order, Version, derive_order_state, utcnow

S = JobState


def version(n: int, sha: str | None = None) -> Version:
    return Version(number=n, source_name=f"art{n}.png", sha256=sha or f"{n:064x}", size=10, saved_at=utcnow(),
                   copy=f"versions/x/v{n}.png")


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JobState, JobState)))
def test_transition_table_is_total_and_self_moves_are_not_listed(current: JobState, target: JobState) -> None:
    allowed = can_move(current, target)
    assert allowed == (target in TRANSITIONS[current])
    if current is target:
        assert not allowed


def test_every_legal_move_is_applied_and_recorded(make_order: Callable[..., Order]) -> None:
    for current, targets in TRANSITIONS.items():
        for target in targets:
            order = make_order()
            job = order.jobs[0]
            job.state = current  # arranging the starting point of the table test only
            _move(order, job, target, "test", "moved")
            assert job.state is target
            assert order.history[-1].details == {"from": current.value, "to": target.value}


def test_every_illegal_move_is_refused_and_changes_nothing(make_order: Callable[..., Order]) -> None:
    for current in JobState:
        for target in set(JobState) - TRANSITIONS[current] - {current}:
            order = make_order()
            job = order.jobs[0]
            job.state = current
            refused = f"this item is {re.escape(current.words)}, so it cannot become “{target.label}”"
            with pytest.raises(TransitionError, match=refused):
                _move(order, job, target, "test", "moved")
            assert job.state is current
            assert order.history == []


def test_happy_path_new_to_delivered(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job_id = order.jobs[0].job_id
    lifecycle.add_version(order, job_id, version(1))
    assert order.jobs[0].state is S.IN_PROGRESS
    lifecycle.send_proof(order, job_id, 1)
    lifecycle.record_answer(order, job_id, approved=False, note="bigger ears", included_revisions=1)
    assert order.jobs[0].state is S.CHANGES_REQUESTED and order.jobs[0].revisions_used == 1
    lifecycle.add_version(order, job_id, version(2))
    assert order.jobs[0].state is S.IN_PROGRESS
    lifecycle.send_proof(order, job_id, 2)
    lifecycle.record_answer(order, job_id, approved=True)
    assert order.jobs[0].approved_version == 2 and order.jobs[0].state is S.APPROVED
    lifecycle.mark_ready(order, job_id, [Deliverable(name="a.png", format="png", size=1, sha256="0", from_version=2)])
    lifecycle.etsy_completed(order)
    assert order.jobs[0].state is S.DELIVERED and order.jobs[0].delivery_confirmed_by == "etsy"
    events = [e.event for e in order.history]
    assert events == ["version_added", "work_started", "proof_sent", "changes_requested", "version_added",
                      "work_started", "proof_sent", "buyer_approved", "ready_to_deliver", "delivered"]


def test_revision_beyond_included_is_marked(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job_id = order.jobs[0].job_id
    lifecycle.add_version(order, job_id, version(1))
    lifecycle.send_proof(order, job_id, 1)
    lifecycle.record_answer(order, job_id, approved=False, note="again", included_revisions=0)
    assert order.history[-1].details["beyond_included"] is True


def test_new_version_after_approval_clears_it_and_says_so(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job_id = order.jobs[0].job_id
    lifecycle.add_version(order, job_id, version(1))
    lifecycle.approve(order, job_id, 1)
    lifecycle.add_version(order, job_id, version(2))
    job = order.jobs[0]
    assert job.state is S.IN_PROGRESS and job.approved_version is None
    assert order.history[-1].event == "approval_cleared"
    assert order.history[-1].details["approved_version"] == 1


def test_duplicate_content_and_gaps_in_numbering_are_refused(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job_id = order.jobs[0].job_id
    lifecycle.add_version(order, job_id, version(1, "a" * 64))
    with pytest.raises(TransitionError, match="already has this file"):
        lifecycle.add_version(order, job_id, version(2, "a" * 64))
    with pytest.raises(TransitionError, match="version number 3 given, 2 expected"):
        lifecycle.add_version(order, job_id, version(3))


def test_answer_without_proof_and_unknown_version_are_refused(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job_id = order.jobs[0].job_id
    with pytest.raises(TransitionError, match="no proof waiting"):
        lifecycle.record_answer(order, job_id, approved=True)
    with pytest.raises(NotFoundError, match="has no version 4"):
        lifecycle.approve(order, job_id, 4)
    with pytest.raises(NotFoundError, match="has no job nope"):
        lifecycle.approve(order, "nope", 1)


def test_hold_and_reopen_return_to_where_the_job_was(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job_id = order.jobs[0].job_id
    lifecycle.add_version(order, job_id, version(1))
    lifecycle.send_proof(order, job_id, 1)
    lifecycle.hold(order, job_id, "buyer on holiday")
    assert order.state is S.ON_HOLD
    lifecycle.reopen(order, job_id)
    assert order.jobs[0].state is S.PROOF_SENT
    with pytest.raises(TransitionError, match="not closed or on hold"):
        lifecycle.reopen(order, job_id)


def test_cancel_stops_open_jobs_but_keeps_delivered_ones(make_order: Callable[..., Order]) -> None:
    order = make_order(jobs=2)
    first = order.jobs[0].job_id
    lifecycle.add_version(order, first, version(1))
    lifecycle.approve(order, first, 1)
    lifecycle.mark_delivered(order, first, confirmed_by="manual")
    lifecycle.cancel(order, "Fully Refunded")
    assert [j.state for j in order.jobs] == [S.DELIVERED, S.CANCELLED]
    assert order.cancelled_at is not None and order.finished_at is not None


def test_completed_on_etsy_without_approval_is_flagged_once(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job_id = order.jobs[0].job_id
    lifecycle.add_version(order, job_id, version(1))
    lifecycle.etsy_completed(order)
    lifecycle.etsy_completed(order)
    job = order.jobs[0]
    assert job.state is S.IN_PROGRESS
    assert "without an approved version" in job.errors["etsy"]
    assert [e.event for e in order.history].count("error") == 1


def test_order_state_is_derived_from_its_jobs() -> None:
    assert derive_order_state([S.DELIVERED, S.IN_PROGRESS]) is S.IN_PROGRESS
    assert derive_order_state([S.CANCELLED, S.CANCELLED]) is S.CANCELLED
    assert derive_order_state([S.CANCELLED, S.DELIVERED]) is S.DELIVERED
    assert derive_order_state([S.APPROVED, S.ON_HOLD]) is S.ON_HOLD
    assert derive_order_state([S.AWAITING_REFERENCES, S.APPROVED]) is S.AWAITING_REFERENCES


def test_anonymise_removes_buyer_text_and_keeps_facts(make_order: Callable[..., Order]) -> None:
    order = make_order(buyer="Grace Hopper")
    order.message_from_buyer = "my dog Rex"
    order.gift_message = "Happy birthday Alan"
    lifecycle.add_note(order, "called Grace")
    removed = lifecycle.anonymise(order, salt="s")
    text = repr(order)
    for secret in ("Grace", "Rex", "Alan", "Biscuit"):
        assert secret not in text
    assert order.buyer_name.startswith("buyer-") and order.receipt_id and order.jobs[0].title
    assert "buyer_name" in removed
    assert lifecycle.pseudonym_for(order.receipt_id, "s") == order.buyer_name
