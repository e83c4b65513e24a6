"""The order manifest as plain typed objects: the ``order.yaml`` schema.

Nothing here touches the disk or decides what may change: :mod:`kaalwatch.lifecycle` changes orders,
:mod:`kaalwatch.manifest` turns them into YAML and back (validated by pydantic against these dataclasses)
and :mod:`kaalwatch.store` reads and writes the files. The ``Annotated`` aliases below say how tolerant
reading is of what a human may have typed (an emptied text, a naive date-time).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, ConfigDict

from kaalwatch.migrations import SCHEMA_VERSION


class JobState(enum.StrEnum):
    AWAITING_REFERENCES = "awaiting_references"
    NEW = "new"
    IN_PROGRESS = "in_progress"
    PROOF_SENT = "proof_sent"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    READY_TO_DELIVER = "ready_to_deliver"
    DELIVERED = "delivered"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")

    @property
    def words(self) -> str:
        """The state as a sentence fragment a shop owner would say ("waiting for the buyer's answer")."""
        return _STATE_WORDS[self]


_STATE_WORDS = {
    JobState.AWAITING_REFERENCES: "waiting for the buyer's photos",
    JobState.NEW: "not started yet",
    JobState.IN_PROGRESS: "in progress",
    JobState.PROOF_SENT: "waiting for the buyer's answer to a proof",
    JobState.CHANGES_REQUESTED: "waiting for a new version (the buyer asked for changes)",
    JobState.APPROVED: "approved",
    JobState.READY_TO_DELIVER: "ready to upload to Etsy",
    JobState.DELIVERED: "already delivered",
    JobState.ON_HOLD: "on hold",
    JobState.CANCELLED: "cancelled",
}

# Where a warning comes from; each source clears its own warning when its cause is gone (see lifecycle).
ERROR_SOURCES = {
    "sync": "Etsy sync",
    "download": "buyer's files",
    "watcher": "folder watcher",
    "delivery": "delivery files",
    "etsy": "Etsy",
    "shipment": "Etsy shipment",
}

ACTIVE_STATES = frozenset(JobState) - {JobState.DELIVERED, JobState.CANCELLED}
FINISHED_STATES = frozenset({JobState.DELIVERED, JobState.CANCELLED})
#: Etsy receipt statuses (lower case) of an order called off, and of one Etsy needs nothing more for.
CANCELLED_STATUSES = frozenset({"canceled", "cancelled", "fully refunded"})
ETSY_FINISHED = CANCELLED_STATUSES | {"completed"}


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(value: Any, key: str = "time") -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{key}: expected an ISO date-time, got {value!r}") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise ValueError(f"{key}: expected an ISO date-time, got {value!r}")


def _text(value: Any) -> Any:
    return "" if value is None else value  # "gift_message:" left empty by hand


def _items(value: Any) -> Any:
    return [] if value is None else value


def _mapping(value: Any) -> Any:
    return {} if value is None else value


def _moment(value: Any) -> datetime | None:
    try:
        return parse_time(value)
    except ValueError:
        raise ValueError("expected an ISO date-time") from None


T = TypeVar("T")
#: Text a human may have emptied (read as ""); numbers written unquoted are read as their digits.
Text = Annotated[str, BeforeValidator(_text)]
#: A list or mapping a human may have emptied (read as empty).
Items = Annotated[list[T], BeforeValidator(_items)]
Keyed = Annotated[dict[str, T], BeforeValidator(_mapping)]
#: An ISO date-time; one without a zone is UTC, an empty one is absent.
Moment = Annotated[datetime, BeforeValidator(_moment)]
MaybeMoment = Annotated[datetime | None, BeforeValidator(_moment)]


@dataclass
class Answer:
    """One personalization answer, keyed by the question's text (its id can change on Etsy)."""

    question: Text
    answer: Text
    kind: Text = "text_input"  # text_input, dropdown, unlabeled_upload, labeled_upload, legacy
    question_id: int | None = None
    files: Items[str] = field(default_factory=list)  # upload URLs, for upload questions


@dataclass
class Reference:
    """A file in ``references/``: a buyer upload, the listing's style sample, or one the artist dropped."""

    name: Text  # file name inside references/ (of the job folder for multi-item orders)
    source: Text  # buyer, listing, artist
    job_id: str | None = None
    url: str | None = None
    label: str | None = None
    sha256: str | None = None
    size: int | None = None
    status: Text = "ok"  # ok, pending, failed
    error: str | None = None
    thumb: str | None = None  # path relative to the tool area


@dataclass
class Version:
    """One immutable save of the artwork."""

    number: int
    source_name: Text
    sha256: Text
    size: int
    saved_at: Moment
    copy: Text  # immutable copy, relative to the tool area
    preview: str | None = None  # relative to the tool area
    thumb: str | None = None
    preview_key: str | None = None  # content hash + watermark settings the preview was made with
    width: int | None = None
    height: int | None = None
    kind: str | None = None
    low_res: bool = False
    note: str | None = None
    error: str | None = None
    paired_with: str | None = None  # the layered source this file is an export of (e.g. a .psd)
    conflict: bool = False  # a sync client's conflict copy
    paired_sha256: str | None = None  # the layered source's bytes: moving or renaming it is not a new save


@dataclass
class Proof:
    version: int
    sent_at: Moment
    answer: str | None = None  # approved, changes_requested
    answered_at: MaybeMoment = None
    note: str | None = None


@dataclass
class Deliverable:
    name: Text  # file name inside deliver/
    format: Text
    size: int
    sha256: Text
    from_version: int
    width: int | None = None
    height: int | None = None
    note: str | None = None
    thumb: str | None = None  # thumbnail of the file's pixels, relative to the tool area
    warnings: Items[str] = field(default_factory=list)  # promises it missed, delivered anyway


@dataclass
class AddOn:
    """A line item of an add-on listing (e.g. Rush): no artwork of its own, it changes the order."""

    transaction_id: Text
    listing_id: int | None
    title: Text
    workflow: Text
    quantity: int = 1
    effect: Text = ""  # what it changed, in words ("due 2 days sooner, urgent")
    receipt_id: int | None = None  # bought in a receipt of its own (a Rush after the portrait), not this one


@dataclass
class Conflict:
    """A sync client's conflict copy of the job's artwork, until the owner says which copy is current."""

    file: Text  # the conflict copy's file name
    version: int | None = None  # the version its bytes became
    original: Text = ""  # the file it is a conflict copy of
    sha256: Text = ""


@dataclass
class Job:
    """One Etsy transaction (line item): its own versions, proofs and approval."""

    job_id: Text  # the Etsy transaction id
    listing_id: int | None
    title: Text
    workflow: Text
    state: JobState = JobState.NEW
    folder: Text = ""  # relative to the order folder; "" for a one-item order
    quantity: int = 1
    sku: str | None = None
    answers: Items[Answer] = field(default_factory=list)
    versions: Items[Version] = field(default_factory=list)
    proofs: Items[Proof] = field(default_factory=list)
    approved_version: int | None = None
    revisions_used: int = 0
    changes_note: str | None = None
    held_from: JobState | None = None
    hold_reason: str | None = None
    deliverables: Items[Deliverable] = field(default_factory=list)
    # Where each cropped deliverable's frame sits along the axis the crop cuts (0 = top/left, 1 = bottom/right;
    # centred when absent), keyed by the deliverable's key; keys in ``margins`` are padded instead of cropped.
    crop: Keyed[float] = field(default_factory=dict)
    margins: Items[str] = field(default_factory=list)
    delivered_at: MaybeMoment = None
    delivery_confirmed_by: str | None = None  # etsy, manual
    conflicts: Items[Conflict] = field(default_factory=list)  # open: nothing is approved or delivered
    # resolved, so the same bytes under the same name are not flagged again
    settled_conflicts: Items[Conflict] = field(default_factory=list)
    errors: Keyed[str] = field(default_factory=dict)  # source (ERROR_SOURCES) → one-line warning

    @property
    def last_error(self) -> str | None:
        """All current warnings as one line (None when there is none)."""
        return "; ".join(self.errors.values()) or None

    def version(self, number: int) -> Version | None:
        return next((v for v in self.versions if v.number == number), None)

    @property
    def latest(self) -> Version | None:
        return self.versions[-1] if self.versions else None


@dataclass
class Note:
    at: Moment
    text: Text
    job_id: str | None = None


@dataclass
class Event:
    """One line of the append-only history."""

    at: Moment
    actor: Text  # sync, watcher, review, cli, retention, delivery, daemon
    event: Text
    job_id: str | None = None
    details: Keyed[Any] = field(default_factory=dict)


@dataclass
class Shipment:
    """Whether Etsy was asked to mark the order shipped (delivery.create_shipment), and what it answered."""

    status: str  # "created" | "refused" | "failed" | "gave_up"
    attempts: int = 0
    at: datetime | None = None
    error: str | None = None


@dataclass
class Order:
    """Everything the artist needs about one Etsy receipt; the source of truth is its ``order.yaml``."""

    # Read by pydantic (kaalwatch.manifest), for this class and every record in it: numbers a human wrote
    # unquoted where text belongs (a SKU, an id) are read as their digits.
    __pydantic_config__ = ConfigDict(coerce_numbers_to_str=True)

    receipt_id: int
    etsy_status: Text
    buyer_name: Text
    ordered_at: MaybeMoment
    ship_by: MaybeMoment
    jobs: Items[Job] = field(default_factory=list)
    schema: int = SCHEMA_VERSION  # of the file it was read from; always written as SCHEMA_VERSION
    buyer_user_id: int | None = None
    is_gift: bool = False
    gift_message: Text = ""
    message_from_buyer: Text = ""
    references: Items[Reference] = field(default_factory=list)
    addons: Items[AddOn] = field(default_factory=list)
    addon_for: int | None = None  # a receipt of add-ons only: the buyer's order they were applied to
    urgent: bool = False
    notes: Items[Note] = field(default_factory=list)
    history: Items[Event] = field(default_factory=list)
    etsy_updated_at: MaybeMoment = None
    etsy_completed: bool = False
    upload_claimed_at: MaybeMoment = None  # "I have uploaded these" for the files now ready; Etsy to confirm
    synced_at: MaybeMoment = None
    cancelled_at: MaybeMoment = None
    files_purged_at: MaybeMoment = None
    anonymised_at: MaybeMoment = None
    pseudonym: str | None = None
    keep_until: MaybeMoment = None  # retention waits until then (an explicit, recorded choice)
    total: str | None = None  # Etsy's grand total ("23.80") and its currency: the shop's books keep them
    currency: str | None = None
    shipment: Shipment | None = None
    errors: Keyed[str] = field(default_factory=dict)  # source (ERROR_SOURCES) → one-line warning
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys a human added, kept as they were

    @property
    def last_error(self) -> str | None:
        return "; ".join(self.errors.values()) or None

    def job(self, job_id: str) -> Job:
        for job in self.jobs:
            if job.job_id == str(job_id):
                return job
        from kaalwatch.errors import NotFoundError

        raise NotFoundError(f"order {self.receipt_id} has no job {job_id}")

    @property
    def state(self) -> JobState:
        """The order's state, derived from its jobs: the least advanced active job decides."""
        return derive_order_state([job.state for job in self.jobs])

    @property
    def finished_on_etsy(self) -> bool:
        return self.etsy_completed or self.etsy_status.strip().lower() in ETSY_FINISHED

    @property
    def finished_at(self) -> datetime | None:
        """When the order was delivered or cancelled as a whole (retention counts from here)."""
        if not self.jobs or any(job.state not in FINISHED_STATES for job in self.jobs):
            return None
        moments = [job.delivered_at for job in self.jobs if job.delivered_at] + (
            [self.cancelled_at] if self.cancelled_at else []
        )
        return max(moments) if moments else None


_ORDER_OF_STATES = list(JobState)


def derive_order_state(states: list[JobState]) -> JobState:
    if not states:
        return JobState.NEW
    if all(s is JobState.CANCELLED for s in states):
        return JobState.CANCELLED
    live = [s for s in states if s is not JobState.CANCELLED]
    if any(s is JobState.ON_HOLD for s in live):
        return JobState.ON_HOLD
    return min(live, key=_ORDER_OF_STATES.index)
