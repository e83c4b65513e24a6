"""What may happen to an order: every change to an order, checked and recorded in history.

Plain functions over :class:`~kaalwatch.model.Order` objects, no I/O. Callers (sync, watcher, review
page, delivery, retention, CLI) never set a field of an order themselves: they call one of these inside
``Workspace.edit`` (see :mod:`kaalwatch.store`), which writes the result atomically under the order's
lock. An illegal move raises :class:`~kaalwatch.errors.TransitionError` and nothing is written
(``tests/test_one_writer.py`` fails on any module outside this package and the store that assigns to a
manifest object).

This module only names the package's public functions; each lives in the module named for its job:
:mod:`.moves` (states, transitions, history, warnings), :mod:`.versions`, :mod:`.references`, :mod:`.proofs`,
:mod:`.delivery`, :mod:`.etsy`, :mod:`.undoing`, :mod:`.retention`.
"""

from kaalwatch.lifecycle.delivery import (
    claim_upload,
    clear_deliverables,
    mark_delivered,
    mark_ready,
    record_shipment,
    set_framing,
)
from kaalwatch.lifecycle.etsy import (
    add_addon,
    addons_applied,
    buyer_messages_changed,
    cancel,
    etsy_completed,
    etsy_updated,
    set_etsy_status,
    synced,
    totals_changed,
)
from kaalwatch.lifecycle.moves import TRANSITIONS, S, can_move, record, refusal, set_error
from kaalwatch.lifecycle.proofs import add_note, approve, hold, record_answer, reopen, send_proof
from kaalwatch.lifecycle.references import (
    add_reference,
    await_references,
    plan_downloads,
    record_downloads,
    references_arrived,
)
from kaalwatch.lifecycle.retention import anonymise, files_purged, keep_until, pseudonym_for, redact
from kaalwatch.lifecycle.undoing import UNDO_SECONDS, undo, undo_seconds_left, undoable
from kaalwatch.lifecycle.versions import (
    add_version,
    complete_version,
    conflict_refusal,
    note_conflict,
    record_move,
    resolve_conflict,
    update_version,
)

__all__ = [
    "TRANSITIONS",
    "UNDO_SECONDS",
    "S",
    "add_addon",
    "add_note",
    "add_reference",
    "add_version",
    "addons_applied",
    "anonymise",
    "approve",
    "await_references",
    "buyer_messages_changed",
    "can_move",
    "cancel",
    "claim_upload",
    "clear_deliverables",
    "complete_version",
    "conflict_refusal",
    "etsy_completed",
    "etsy_updated",
    "files_purged",
    "hold",
    "keep_until",
    "mark_delivered",
    "mark_ready",
    "note_conflict",
    "plan_downloads",
    "pseudonym_for",
    "record",
    "record_answer",
    "record_downloads",
    "record_move",
    "record_shipment",
    "redact",
    "references_arrived",
    "refusal",
    "reopen",
    "resolve_conflict",
    "send_proof",
    "set_error",
    "set_etsy_status",
    "set_framing",
    "synced",
    "totals_changed",
    "undo",
    "undo_seconds_left",
    "undoable",
    "update_version",
]
