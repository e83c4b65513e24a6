"""lifecycle.add_reference, the operation the watcher added for hand-dropped references."""

from __future__ import annotations

from collections.abc import Callable

from kaalwatch import lifecycle
from kaalwatch.model import JobState, Order, Reference


def test_add_reference_is_idempotent_and_ends_waiting(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job = order.jobs[0]
    lifecycle.await_references(order, job.job_id)
    assert job.state is JobState.AWAITING_REFERENCES
    ref = Reference(name="dog.jpg", source="artist", job_id=job.job_id, sha256="ab" * 32, size=10)
    assert lifecycle.add_reference(order, ref, "watcher") is True
    assert job.state is JobState.NEW
    events = [e.event for e in order.history]
    assert lifecycle.add_reference(order, ref, "watcher") is False
    assert [e.event for e in order.history] == events
    assert [r.name for r in order.references] == ["dog.jpg"]
    assert "reference_added" in events
