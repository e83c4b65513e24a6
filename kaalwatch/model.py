"""The order manifest as plain typed objects, and its (de)serialisation to the ``order.yaml`` schema.

Nothing here touches the disk or decides what may change: :mod:`kaalwatch.lifecycle` changes orders and
:mod:`kaalwatch.store` reads and writes them. ``from_dict`` is strict about what the tool needs (ids,
states, numbers) and tolerant about what a human may have added (unknown keys are kept, not lost).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kaalwatch.errors import ManifestError

SCHEMA_VERSION = 1


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


@dataclass
class Answer:
    """One personalization answer, keyed by the question's text (its id can change on Etsy)."""

    question: str
    answer: str
    kind: str = "text_input"  # text_input, dropdown, unlabeled_upload, labeled_upload, legacy
    question_id: int | None = None
    files: list[str] = field(default_factory=list)  # upload URLs, for upload questions


@dataclass
class Reference:
    """A file in ``references/``: a buyer upload, the listing's style sample, or one the artist dropped."""

    name: str  # file name inside references/ (of the job folder for multi-item orders)
    source: str  # buyer, listing, artist
    job_id: str | None = None
    url: str | None = None
    label: str | None = None
    sha256: str | None = None
    size: int | None = None
    status: str = "ok"  # ok, pending, failed
    error: str | None = None
    thumb: str | None = None  # path relative to the tool area


@dataclass
class Version:
    """One immutable save of the artwork."""

    number: int
    source_name: str
    sha256: str
    size: int
    saved_at: datetime
    copy: str  # immutable copy, relative to the tool area
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
    sent_at: datetime
    answer: str | None = None  # approved, changes_requested
    answered_at: datetime | None = None
    note: str | None = None


@dataclass
class Deliverable:
    name: str  # file name inside deliver/
    format: str
    size: int
    sha256: str
    from_version: int
    width: int | None = None
    height: int | None = None
    note: str | None = None
    thumb: str | None = None  # thumbnail of the file's pixels, relative to the tool area
    warnings: list[str] = field(default_factory=list)  # promises it missed, delivered anyway


@dataclass
class AddOn:
    """A line item of an add-on listing (e.g. Rush): no artwork of its own, it changes the order."""

    transaction_id: str
    listing_id: int | None
    title: str
    workflow: str
    quantity: int = 1
    effect: str = ""  # what it changed, in words ("due 2 days sooner, urgent")


@dataclass
class Job:
    """One Etsy transaction (line item): its own versions, proofs and approval."""

    job_id: str  # the Etsy transaction id
    listing_id: int | None
    title: str
    workflow: str
    state: JobState = JobState.NEW
    folder: str = ""  # relative to the order folder; "" for a one-item order
    quantity: int = 1
    sku: str | None = None
    answers: list[Answer] = field(default_factory=list)
    versions: list[Version] = field(default_factory=list)
    proofs: list[Proof] = field(default_factory=list)
    approved_version: int | None = None
    revisions_used: int = 0
    changes_note: str | None = None
    held_from: JobState | None = None
    hold_reason: str | None = None
    deliverables: list[Deliverable] = field(default_factory=list)
    # Where each cropped deliverable's frame sits along the axis the crop cuts (0 = top/left, 1 = bottom/right;
    # centred when absent), keyed by the deliverable's key; keys in ``margins`` are padded instead of cropped.
    crop: dict[str, float] = field(default_factory=dict)
    margins: list[str] = field(default_factory=list)
    delivered_at: datetime | None = None
    delivery_confirmed_by: str | None = None  # etsy, manual
    conflicts: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # source (ERROR_SOURCES) → one-line warning

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
    at: datetime
    text: str
    job_id: str | None = None


@dataclass
class Event:
    """One line of the append-only history."""

    at: datetime
    actor: str  # sync, watcher, review, cli, retention, delivery, daemon
    event: str
    job_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


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

    receipt_id: int
    etsy_status: str
    buyer_name: str
    ordered_at: datetime | None
    ship_by: datetime | None
    jobs: list[Job] = field(default_factory=list)
    schema: int = SCHEMA_VERSION
    buyer_user_id: int | None = None
    is_gift: bool = False
    gift_message: str = ""
    message_from_buyer: str = ""
    references: list[Reference] = field(default_factory=list)
    addons: list[AddOn] = field(default_factory=list)
    urgent: bool = False
    notes: list[Note] = field(default_factory=list)
    history: list[Event] = field(default_factory=list)
    etsy_updated_at: datetime | None = None
    etsy_completed: bool = False
    upload_claimed_at: datetime | None = None  # "I have uploaded these" for the files now ready; Etsy to confirm
    synced_at: datetime | None = None
    cancelled_at: datetime | None = None
    files_purged_at: datetime | None = None
    anonymised_at: datetime | None = None
    pseudonym: str | None = None
    keep_until: datetime | None = None  # retention waits until then (an explicit, recorded choice)
    total: str | None = None  # Etsy's grand total ("23.80") and its currency: the shop's books keep them
    currency: str | None = None
    shipment: Shipment | None = None
    errors: dict[str, str] = field(default_factory=dict)  # source (ERROR_SOURCES) → one-line warning
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


# --------------------------------------------------------------------------------------------------
# Serialisation


def to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.name == "extra":
                continue
            out[f.name] = to_plain(getattr(value, f.name))
        out.update(getattr(value, "extra", {}) or {})
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def order_to_dict(order: Order) -> dict[str, Any]:
    plain = to_plain(order)
    return {"schema": plain.pop("schema"), **plain}  # schema first: the first thing a reader checks


class _SchemaError(ValueError):
    pass


def _convert(type_: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(type_)
    args = typing.get_args(type_)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key)
    if origin is list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise _SchemaError(f"{key}: expected a list")
        return [_convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _SchemaError(f"{key}: expected a mapping")
        if args and args[1] is str:
            return {str(k): str(v) for k, v in value.items()}
        return dict(value)
    if dataclasses.is_dataclass(type_):
        return _build(type_, value, key)
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        try:
            return type_(value)
        except ValueError:
            choices = ", ".join(m.value for m in type_)
            raise _SchemaError(f"{key}: {value!r} is not one of {choices}") from None
    if type_ is datetime:
        try:
            return parse_time(value, key)
        except ValueError as exc:
            raise _SchemaError(str(exc)) from None
    if type_ is bool:
        if not isinstance(value, bool):
            raise _SchemaError(f"{key}: expected true or false, got {value!r}")
        return value
    if type_ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.isdigit():
                return int(value)
            raise _SchemaError(f"{key}: expected a whole number, got {value!r}")
        return value
    if type_ is str:
        if value is None:
            return ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise _SchemaError(f"{key}: expected text, got {type(value).__name__}")
        return value
    if type_ is Any:
        return value
    raise TypeError(f"unsupported manifest type {type_!r}")


@functools.cache
def _schema(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """The resolved type hints and fields of a manifest dataclass (resolving hints costs more than
    converting a whole version record, and every manifest read builds dozens of records)."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _build(cls: type, data: Any, key: str) -> Any:
    if not isinstance(data, dict):
        raise _SchemaError(f"{key or 'manifest'}: expected a mapping")
    hints, names = _schema(cls)
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in data.items():
        if name not in names or name == "extra":
            extra[str(name)] = value
            continue
        kwargs[name] = _convert(hints[name], value, f"{key}.{name}" if key else name)
    missing = [
        f.name
        for f in names.values()
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise _SchemaError(f"{key or 'manifest'}: missing '{missing[0]}'")
    obj = cls(**kwargs)
    # Keys a human added at the top level are kept; inside nested records they are not (yet).
    if extra and "extra" in names:
        obj.extra = extra  # type: ignore[attr-defined]
    return obj


def order_from_dict(data: Any, source: str = "order.yaml") -> Order:
    """Build an :class:`Order` from parsed YAML; raises :class:`ManifestError` naming ``source``."""
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: not a manifest (expected a mapping at the top)")
    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise ManifestError(f"{source}: schema: expected a whole number, got {schema!r}")
    if schema > SCHEMA_VERSION:
        raise ManifestError(
            f"{source}: written by a newer kaalwatch (schema {schema}, this one knows {SCHEMA_VERSION})",
            hint="upgrade kaalwatch; the file was left as it is",
        )
    # Before warnings had sources they were one sticky ``last_error`` (and ``flags``): dropped, because
    # nothing could ever clear them; the next sync, rescan or build records what is still wrong.
    data = {k: v for k, v in data.items() if k not in ("last_error", "flags")}
    jobs = data.get("jobs")
    if isinstance(jobs, list):
        data["jobs"] = [{k: v for k, v in j.items() if k not in ("last_error", "flags")} if isinstance(j, dict)
                        else j for j in jobs]
    try:
        return _build(Order, data, "")
    except _SchemaError as exc:
        raise ManifestError(f"{source}: {exc}") from None
