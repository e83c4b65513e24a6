"""What can happen next to a job, and which of those is the expected next step — read from the lifecycle.

Pure functions over :class:`~kaalwatch.model.Order` objects. The review page offers exactly the actions
named here (the expected one as the primary button), the "Today" view groups jobs by :attr:`Outlook.group`,
and every state gets a one-line explanation of what it means and what to do. Legality comes from
:data:`kaalwatch.lifecycle.TRANSITIONS`, so a button is never offered for a move the lifecycle refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kaalwatch.lifecycle import can_move
from kaalwatch.model import Job, JobState, Order

S = JobState

# The Today view's groups, in the order they are shown; "overdue" is decided at view time (it needs today).
GROUPS: dict[str, str] = {
    "overdue": "Overdue",
    "proof": "Send a proof",
    "start": "Start work",
    "save": "Save a new version",
    "build": "Build files",
    "upload": "Upload to Etsy",
    "waiting": "Waiting for the buyer",
    "on_hold": "On hold",
    "done": "Finished",
}
# Groups whose jobs can be late: waiting for the buyer or on hold is not the artist's delay to show first.
WORK_GROUPS = frozenset({"proof", "start", "save", "build", "upload", "waiting"})

# Button text of every action the page can offer.
ACTION_LABELS: dict[str, str] = {
    "ask_photos": "Copy the message asking for photos",
    "send_proof": "Mark proof sent",
    "answer": "Record the buyer's answer",
    "approve": "Approve a version",
    "build": "Prepare files for Etsy",
    "upload": "Open the order on Etsy",
    "hold": "Put on hold",
    "resume": "Resume work",
    "reopen": "Reopen for more work",
}

REFUNDED = ("Fully Refunded", "Partially Refunded")


@dataclass(frozen=True)
class Outlook:
    """A job's state explained: the actions it allows, the expected one first, and the Today group."""

    headline: str  # one line: what the state means and what to do
    expected: str | None  # the primary action (a key of ACTION_LABELS), None when nothing is expected
    actions: tuple[str, ...]  # every legal action, the expected one first
    group: str  # a key of GROUPS
    since: datetime | None  # when the current wait began (proof sent, order placed) for "N days"
    stop: str | None  # a stop-work banner (cancelled, refunded, completed without approval)
    marker: str | None  # the same, as a word or two for the jobs list


def proofable(job: Job) -> list[int]:
    """Versions that may still be sent as a proof: they have a preview and are newer than the last version
    the buyer asked changes to (changes to version 3 are answered by version 4, not by sending 2 again)."""
    spent = max((p.version for p in job.proofs if p.answer == "changes_requested"), default=0)
    return [v.number for v in job.versions if v.preview and v.number > spent]


def stop_work(order: Order, job: Job) -> tuple[str, str] | None:
    """A job that must not be worked on (or needs checking): a word or two for a list and the loud line for
    its page — None for a normal job."""
    refunded = order.etsy_status if order.etsy_status in REFUNDED else None
    if job.state is S.CANCELLED:
        why = f" ({refunded.lower()})" if refunded else ""
        return ("refunded" if refunded == "Fully Refunded" else "cancelled",
                f"Cancelled on Etsy{why} — stop work on this item: nothing to send, build or upload.")
    if "etsy" in job.errors:
        return ("completed without approval",
                "Completed on Etsy without an approved version — check in Etsy what the buyer received.")
    if refunded == "Partially Refunded" and job.state is not S.DELIVERED:
        return "partially refunded", "Partially refunded on Etsy — check in Etsy what was refunded before going on."
    if refunded == "Fully Refunded":
        return "refunded", "Fully refunded on Etsy — stop work on this order."
    return None


def _legal(job: Job) -> list[str]:
    state = job.state
    actions: list[str] = []
    if state is S.AWAITING_REFERENCES:
        actions.append("ask_photos")
    newer = [n for n in proofable(job) if not job.proofs or n > job.proofs[-1].version]
    # Re-proofing approved work is not a next step (saving a new version clears the approval instead).
    fresh = (can_move(state, S.PROOF_SENT) and proofable(job)) or (state is S.PROOF_SENT and newer)
    if fresh and state not in (S.APPROVED, S.READY_TO_DELIVER):
        actions.append("send_proof")
    if state is S.PROOF_SENT:
        actions.append("answer")
    if job.versions and (can_move(state, S.APPROVED) or state is S.APPROVED) and state is not S.ON_HOLD:
        actions.append("approve")
    if state in (S.APPROVED, S.READY_TO_DELIVER):
        actions.append("build")
    if state is S.READY_TO_DELIVER:
        actions.append("upload")
    if can_move(state, S.ON_HOLD):
        actions.append("hold")
    if state is S.ON_HOLD:
        actions.append("resume")
    if state in (S.DELIVERED, S.CANCELLED):
        actions.append("reopen")
    return actions


# (expected action, Today group, headline) of the states whose words depend on nothing else.
_PLAIN: dict[JobState, tuple[str | None, str, str]] = {
    S.AWAITING_REFERENCES: ("ask_photos", "waiting",
                            "Waiting for the buyer's photos — ask for them in Etsy Messages."),
    S.NEW: (None, "start", "Ready to start — save your first version into the folder below."),
    S.IN_PROGRESS: (None, "save", "In progress — save a version into the folder; its preview appears here."),
    S.CHANGES_REQUESTED: (None, "save", "The buyer asked for changes — save a new version into the folder."),
    S.READY_TO_DELIVER: ("upload", "upload", "Files are ready — upload them on Etsy's order page and complete "
                                             "the order there; the next sync marks it delivered."),
    S.DELIVERED: (None, "done", "Delivered — nothing left to do."),
    S.CANCELLED: (None, "done", "Cancelled on Etsy — nothing to do."),
}


def outlook(order: Order, job: Job) -> Outlook:
    """What this job's state means, what may happen next, and what is expected."""
    state = job.state
    legal = _legal(job)
    last = job.proofs[-1] if job.proofs else None
    since = order.ordered_at
    expected: str | None
    if state is S.IN_PROGRESS and "send_proof" in legal:
        expected, group = "send_proof", "proof"
        headline = f"Version {proofable(job)[-1]} is saved — send it to the buyer as a proof."
    elif state is S.PROOF_SENT:
        expected, group, since = "answer", "waiting", last.sent_at if last else since
        headline = (f"Proof of version {last.version if last else '?'} sent — waiting for the buyer's answer; "
                    "record it here when it comes.")
    elif state is S.APPROVED:
        expected, group = "build", "build"
        headline = f"Version {job.approved_version} is approved — prepare the files for Etsy."
    elif state is S.ON_HOLD:
        expected, group = "resume", "on_hold"
        reason = f" ({job.hold_reason})" if job.hold_reason else ""
        headline = f"On hold{reason} — it does not count down; resume work when you are ready."
    else:
        expected, group, headline = _PLAIN[state]
    actions = tuple(sorted(legal, key=lambda a: a != expected))
    marker, stop = stop_work(order, job) or (None, None)
    return Outlook(headline=headline, expected=expected if expected in legal else None, actions=actions,
                   group=group, since=since, stop=stop, marker=marker)


def photos_message(order: Order, job: Job, shop: str, first_name: str) -> str:
    """A ready message asking the buyer for their photos (the owner pastes it into Etsy Messages)."""
    return (
        f"Hi {first_name}! Thank you for ordering the {job.title} (order #{order.receipt_id}). "
        "To start on it I need your photos: please send them here in Etsy Messages, "
        f"or upload them on the order page. Thank you! — {shop}"
    )
