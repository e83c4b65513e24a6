"""Etsy JSON → our objects: receipts, listings and personalization answers, tolerant of real traffic.

Real answers differ from Etsy's document: title-case statuses, both ``create_timestamp`` and
``created_timestamp`` (and timestamps rewritten by libraries and proxies: numeric strings, ISO-8601, see
:mod:`kaalwatch.etsy.timestamps`), HTML entities and ``\\r\\n`` in buyer text, ``null`` or ``""`` for
empty strings, extra keys. Everything here accepts that. Only what the tool cannot work
without is strict: a receipt needs a whole-number ``receipt_id`` and each line item a ``transaction_id``;
anything else missing becomes an empty value. Buyer text is unescaped and its line ends normalised, and
otherwise kept as the buyer wrote it: escaping for display is the page's job.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kaalwatch.errors import EtsyError
from kaalwatch.etsy.timestamps import CREATED, UPDATED, first_epoch
from kaalwatch.model import CANCELLED_STATUSES, AddOn, Answer, Job, Order
from kaalwatch.settings import Settings, Workflow
from kaalwatch.workflows import workflow_for

PERSONALIZATION_PROPERTY_ID = 54
NOT_REQUESTED = "Not requested on this item."
UPLOAD_KINDS = frozenset({"unlabeled_upload", "labeled_upload"})
_URL = re.compile(r"https?://[^\s,]+", re.IGNORECASE)


class ParseError(EtsyError):
    """An Etsy object lacks what the tool needs (a receipt id, a transaction id)."""


def clean(value: Any) -> str:
    """Buyer or seller text: entities unescaped, ``\\r\\n`` → ``\\n``; ``None`` → ``""``."""
    if value is None:
        return ""
    return html.unescape(str(value)).replace("\r\n", "\n").replace("\r", "\n")


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _required_int(data: Mapping[str, Any], key: str, what: str) -> int:
    value = _int(data.get(key))
    if value is None or value <= 0:
        raise ParseError(f"{what} without a valid {key} ({data.get(key)!r})")
    return value


def _time(data: Mapping[str, Any], keys: tuple[str, ...]) -> datetime | None:
    stamp = first_epoch(data, keys)
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC)


def updated_epoch(data: Mapping[str, Any]) -> int:
    """A receipt's last change as epoch seconds, whatever the spelling; its creation when it has none
    (Etsy's update time is never earlier), 0 when it has neither. The sync's high-water mark is these."""
    return first_epoch(data, UPDATED) or first_epoch(data, CREATED) or 0


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


@dataclass(frozen=True)
class Variation:
    """One ``transactions[].variations[]`` entry."""

    property_id: int | None
    question_id: int | None
    name: str
    value: str


@dataclass(frozen=True)
class EtsyTransaction:
    transaction_id: int
    listing_id: int | None
    title: str
    quantity: int
    sku: str | None
    variations: tuple[Variation, ...]
    expected_ship: datetime | None


@dataclass(frozen=True)
class EtsyReceipt:
    """What sync needs from one ``ShopReceipt``; ``raw`` is not kept (memory: first imports are large)."""

    receipt_id: int
    status: str  # as Etsy sent it ("Paid", "Fully Refunded"); compare via status_key
    is_paid: bool
    is_shipped: bool
    buyer_name: str
    buyer_user_id: int | None
    message_from_buyer: str
    is_gift: bool
    gift_message: str
    created: datetime | None
    updated: int  # epoch seconds; the sync high-water mark is made of these
    transactions: tuple[EtsyTransaction, ...]
    total: str | None = None  # grand total as a decimal string ("23.80"), kept for the shop's books
    currency: str | None = None

    @property
    def status_key(self) -> str:
        return self.status.strip().lower()

    @property
    def is_cancelled(self) -> bool:
        return self.status_key in CANCELLED_STATUSES

    @property
    def is_completed(self) -> bool:
        return self.status_key == "completed" or self.is_shipped

    @property
    def is_open_work(self) -> bool:
        """Paid and neither cancelled nor completed: a new folder is made only for these."""
        return self.is_paid and not self.is_cancelled and not self.is_completed

    @property
    def listing_ids(self) -> set[int]:
        return {t.listing_id for t in self.transactions if t.listing_id is not None}


def parse_receipt(data: Any) -> EtsyReceipt:
    """A ``ShopReceipt`` (any real-traffic spelling); :class:`ParseError` only if ids are missing."""
    if not isinstance(data, Mapping):
        raise ParseError(f"a receipt that is not an object ({type(data).__name__})")
    receipt_id = _required_int(data, "receipt_id", "a receipt")
    grand_total = data.get("grandtotal") or data.get("grand_total")
    return EtsyReceipt(
        receipt_id=receipt_id,
        # A receipt without a status is still usable: what the flags say is enough to sync it.
        status=clean(data.get("status")).strip() or ("Paid" if _bool(data.get("is_paid")) else "Open"),
        is_paid=_bool(data.get("is_paid")),
        is_shipped=_bool(data.get("is_shipped")),
        buyer_name=clean(data.get("name")).strip(),
        buyer_user_id=_int(data.get("buyer_user_id")),
        message_from_buyer=clean(data.get("message_from_buyer")),
        is_gift=_bool(data.get("is_gift")),
        gift_message=clean(data.get("gift_message")),
        created=_time(data, CREATED),
        updated=updated_epoch(data),
        transactions=tuple(parse_transaction(item, receipt_id) for item in data.get("transactions") or []),
        total=money(grand_total),
        currency=_currency(grand_total),
    )


def money(value: Any) -> str | None:
    """Etsy's Money object ``{amount, divisor, currency_code}`` as a decimal string; None if unusable."""
    if not isinstance(value, Mapping):
        return None
    amount, divisor = _int(value.get("amount")), _int(value.get("divisor")) or 0
    if amount is None or divisor <= 0:
        return None
    total = Decimal(amount) / Decimal(divisor)
    places = len(str(divisor)) - 1 if str(divisor).strip("0") == "1" else 2
    return str(total.quantize(Decimal(1).scaleb(-places)))


def _currency(value: Any) -> str | None:
    code = clean(value.get("currency_code")).strip().upper() if isinstance(value, Mapping) else ""
    return code if re.fullmatch(r"[A-Z]{3}", code) else None


def parse_transaction(data: Any, receipt_id: int) -> EtsyTransaction:
    if not isinstance(data, Mapping):
        raise ParseError(f"receipt {receipt_id}: a line item that is not an object")
    transaction_id = _required_int(data, "transaction_id", f"a line item of receipt {receipt_id}")
    variations = tuple(
        Variation(property_id=_int(entry.get("property_id")), question_id=_int(entry.get("question_id")),
                  name=clean(entry.get("formatted_name")).strip(), value=clean(entry.get("formatted_value")))
        for entry in data.get("variations") or [] if isinstance(entry, Mapping))
    return EtsyTransaction(
        transaction_id=transaction_id,
        listing_id=_int(data.get("listing_id")),
        title=clean(data.get("title")).strip() or f"item {transaction_id}",
        quantity=max(1, _int(data.get("quantity")) or 1),
        sku=clean(data.get("sku")).strip() or None,
        variations=variations,
        expected_ship=_time(data, ("expected_ship_date",)),
    )


# --------------------------------------------------------------------------------------------------
# Listings and their questions


@dataclass(frozen=True)
class Question:
    question_id: int | None
    text: str
    kind: str  # text_input, dropdown, unlabeled_upload, labeled_upload
    required: bool = False


@dataclass(frozen=True)
class ListingInfo:
    listing_id: int
    title: str
    main_image_url: str | None
    questions: tuple[Question, ...] = ()
    skus: tuple[str, ...] = ()


def parse_questions(body: Any) -> tuple[Question, ...]:
    """``getListingPersonalization`` → questions; malformed entries are skipped, not fatal."""
    items = body.get("personalization_questions") if isinstance(body, Mapping) else None
    out = []
    for item in items or []:
        text = clean(item.get("question_text")).strip() if isinstance(item, Mapping) else ""
        if text:
                out.append(Question(question_id=_int(item.get("question_id")), text=text,
                                kind=str(item.get("question_type") or "text_input"),
                                required=_bool(item.get("required"))))
    return tuple(out)


def parse_listing(data: Mapping[str, Any]) -> ListingInfo:
    """A listing (with ``images`` when asked for); the main image is rank 1. Its questions are read on their own
    (:func:`parse_questions`): the batch of listings does not carry them."""
    listing_id = _required_int(data, "listing_id", "a listing")
    images = [i for i in data.get("images") or [] if isinstance(i, Mapping)]
    images.sort(key=lambda i: _int(i.get("rank")) or 10_000)
    urls = (image.get("url_fullxfull") or image.get("url_570xN") for image in images)
    main = next((url for url in urls if isinstance(url, str) and url), None)
    skus = tuple(str(s) for s in data.get("skus") or [] if s)
    return ListingInfo(listing_id=listing_id, title=clean(data.get("title")).strip(), main_image_url=main, skus=skus)


# --------------------------------------------------------------------------------------------------
# Answers


@dataclass(frozen=True)
class Upload:
    """A buyer file URL from an upload question (hostile: fetched only through :mod:`kaalwatch.download`)."""

    url: str
    question: str
    label: str | None = None


def split_urls(value: str) -> list[str]:
    """One URL per entry, or several separated by commas or whitespace (both are seen)."""
    return [m.group(0) for m in _URL.finditer(value)]


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass
class _Group:
    question: Question | None
    name: str
    entries: list[tuple[Variation, str | None]] = field(default_factory=list)  # (entry, label)


def join_answers(variations: Sequence[Variation], questions: Sequence[Question]) -> tuple[list[Answer], list[Upload]]:
    """Answers question by question (joined on ``question_id``, else on the question's text) and the uploads.

    Every question of the listing gets an answer, ``""`` when the buyer skipped it; entries that match no
    question (an edited question, other variations) are kept under the name Etsy gave them.
    """
    by_id: dict[int | None, Question] = {q.question_id: q for q in questions if q.question_id is not None}
    by_name = {_norm(q.text): q for q in questions}
    groups = {_norm(q.text): _Group(q, q.text) for q in questions}
    order = [_norm(q.text) for q in questions]
    for entry in variations:
        personal = entry.property_id == PERSONALIZATION_PROPERTY_ID or entry.question_id is not None
        question: Question | None = None
        label: str | None = None
        if personal:
            question = by_id.get(entry.question_id) or by_name.get(_norm(entry.name))
            if question is None:
                # Labeled uploads arrive as "<question text>: <label>", one entry per file.
                for q in questions:
                    prefix = _norm(q.text) + ":"
                    if q.kind == "labeled_upload" and _norm(entry.name).startswith(prefix):
                        question, label = q, entry.name[len(q.text) + 1:].strip() or None
                        break
            if question is not None and question.kind == "labeled_upload" and label is None and ":" in entry.name:
                head, _, tail = entry.name.rpartition(":")
                if _norm(head) == _norm(question.text):
                    label = tail.strip() or None
        key = _norm(question.text) if question else ("variation:" if not personal else "") + _norm(entry.name)
        if key not in groups:
            groups[key] = _Group(question, question.text if question else entry.name)
            order.append(key)
        groups[key].entries.append((entry, label))

    answers: list[Answer] = []
    uploads: list[Upload] = []
    for key in order:
        group = groups[key]
        question = group.question
        kind = question.kind if question else ("variation" if key.startswith("variation:") else "legacy")
        qid = question.question_id if question else next((e.question_id for e, _ in group.entries), None)
        # Upload questions hold links; so may entries of a question the listing no longer has.
        urls = [(url, label) for entry, label in group.entries for url in split_urls(entry.value)
                if kind in UPLOAD_KINDS or kind == "legacy"]
        if urls:
            labels = [label for _, label in urls if label]
            text = ", ".join(labels) if labels else f"{len(urls)} file{'s' if len(urls) != 1 else ''}"
            answers.append(Answer(question=group.name, answer=text, kind=kind, question_id=qid,
                                  files=[u for u, _ in urls]))
            uploads.extend(Upload(url=u, question=group.name, label=label) for u, label in urls)
            continue
        values = [e.value for e, _ in group.entries if e.value.strip() != NOT_REQUESTED]
        answers.append(Answer(question=group.name, answer="\n".join(values), kind=kind, question_id=qid))
    return answers, uploads


# --------------------------------------------------------------------------------------------------
# Receipt → Order


@dataclass
class NewOrder:
    """An order built from a receipt, and the files to fetch into each job's ``references/``."""

    order: Order
    uploads: dict[str, list[Upload]]  # job_id -> buyer uploads
    style_samples: dict[str, str]  # job_id -> listing main image URL
    needs_references: dict[str, bool]  # job_id -> the workflow waits for buyer photos
    # Add-on line items (Rush…): no job; sync applies each through lifecycle.add_addon with its workflow.
    addons: list[tuple[AddOn, Workflow]] = field(default_factory=list)


def build_order(receipt: EtsyReceipt, listings: Mapping[int, ListingInfo], settings: Settings) -> NewOrder:
    """A new :class:`Order` (jobs one per transaction, answers joined) — not yet on disk."""
    jobs: list[Job] = []
    uploads: dict[str, list[Upload]] = {}
    samples: dict[str, str] = {}
    needs: dict[str, bool] = {}
    addons: list[tuple[AddOn, Workflow]] = []
    for tx in receipt.transactions:
        listing = listings.get(tx.listing_id) if tx.listing_id is not None else None
        title = tx.title or (listing.title if listing else "")
        workflow = workflow_for(settings.workflows, settings.default_workflow, listing_id=tx.listing_id,
                                sku=tx.sku, title=title)
        if workflow.kind == "addon":
            addons.append((AddOn(transaction_id=str(tx.transaction_id), listing_id=tx.listing_id, title=title,
                                 workflow=workflow.name, quantity=tx.quantity), workflow))
            continue
        answers, files = join_answers(tx.variations, listing.questions if listing else ())
        job_id = str(tx.transaction_id)
        jobs.append(Job(job_id=job_id, listing_id=tx.listing_id, title=title, workflow=workflow.name,
                        quantity=tx.quantity, sku=tx.sku, answers=answers))
        uploads[job_id] = files
        if listing and listing.main_image_url:
            samples[job_id] = listing.main_image_url
        needs[job_id] = workflow.needs_references
    order = Order(
        receipt_id=receipt.receipt_id,
        etsy_status=receipt.status,
        buyer_name=receipt.buyer_name,
        ordered_at=receipt.created,
        ship_by=min((t.expected_ship for t in receipt.transactions if t.expected_ship), default=None),
        jobs=jobs,
        buyer_user_id=receipt.buyer_user_id,
        is_gift=receipt.is_gift,
        gift_message=receipt.gift_message,
        message_from_buyer=receipt.message_from_buyer,
        etsy_updated_at=datetime.fromtimestamp(receipt.updated, UTC) if receipt.updated else None,
        total=receipt.total,
        currency=receipt.currency,
    )
    return NewOrder(order=order, uploads=uploads, style_samples=samples, needs_references=needs, addons=addons)
