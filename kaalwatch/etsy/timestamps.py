"""Etsy timestamps in every spelling they arrive in, read as epoch seconds.

Etsy's v3 sends epoch integers, and sends most of them twice (``created_timestamp`` and
``create_timestamp``, ``updated_timestamp`` and ``update_timestamp``). Client libraries, proxies and
saved recordings rewrite them: numeric strings, floats, milliseconds, ISO-8601 strings (``Z``, offsets,
fractions, a bare date), now and then an HTTP date. The parser and the sandbox's replay both read them
here, so one receipt means one moment whichever spelling it came in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

# Each pair in the order it is preferred: the ``…ed_timestamp`` spelling, which every v3 schema has
# (receipts, transactions, listings, refunds), then the ``…e_timestamp`` one only receipts and
# transactions carry. The second is read only when the first is missing or unreadable.
CREATED = ("created_timestamp", "create_timestamp")
UPDATED = ("updated_timestamp", "update_timestamp")
# Epoch values this large are milliseconds (as seconds they would be after the year 5000).
_MILLISECONDS_FROM = 100_000_000_000


def _from_number(value: float) -> int | None:
    if value != value or value <= 0:  # NaN or not a moment at all
        return None
    if value >= _MILLISECONDS_FROM:
        value /= 1000
    return int(value)


def epoch_seconds(value: Any) -> int | None:
    """``value`` as whole epoch seconds (UTC), or None when it is not a readable, positive moment."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_number(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return _from_number(float(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:  # a recording without an offset: Etsy's clock is UTC
        moment = moment.replace(tzinfo=UTC)
    return _from_number(moment.timestamp())


def first_epoch(data: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first of ``keys`` in ``data`` that holds a readable moment, as epoch seconds."""
    for key in keys:
        value = data.get(key)
        if type(value) is int and 0 < value < _MILLISECONDS_FROM:  # what Etsy sends: the sandbox sorts 5000 per page
            return value
        stamp = epoch_seconds(value)
        if stamp is not None:
            return stamp
    return None
