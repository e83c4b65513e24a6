"""Etsy's limits on the files of a made-to-order digital delivery, and one file or order checked against them.

Etsy's order page takes at most 5 files per order, each at most 20 MB, each name at most 70 characters
(Etsy's help for made-to-order digital items). Names are plain ASCII here: buyers download them on every kind of
device, and Etsy has been seen to mangle accents and symbols in uploaded names.
"""

from __future__ import annotations

from dataclasses import dataclass

from kaalwatch.delivery.names import is_safe_name
from kaalwatch.settings import DeliverySettings

# Etsy does not say whether its "MB" is 10^6 or 2^20 bytes; the smaller reading is the one that is always safe.
BYTES_PER_MB = 1_000_000


def max_bytes(limits: DeliverySettings) -> int:
    return int(limits.max_file_mb * BYTES_PER_MB)


def human_size(size: int) -> str:
    """"840 KB" below a megabyte, "4.3 MB" above: a 40 KB file is not "0.0 MB"."""
    if size < BYTES_PER_MB:
        return f"{max(1, round(size / 1000)) if size else 0} KB"
    return f"{size / BYTES_PER_MB:.1f} MB"


@dataclass(frozen=True)
class Check:
    """One limit or promise against one file (or the order as a whole); not ok is shown as a warning."""

    limit: str  # Etsy's: size, name_length, name_safe, count; the promise's: pixels, dpi, crop, colour, quantity
    ok: bool
    detail: str


def file_checks(name: str, size: int, limits: DeliverySettings) -> list[Check]:
    cap = max_bytes(limits)
    return [
        Check("size", size <= cap, f"{human_size(size)} of {limits.max_file_mb:g} MB"),
        Check("name_length", len(name) <= limits.max_name_length,
              f"{len(name)} of {limits.max_name_length} characters"),
        Check("name_safe", is_safe_name(name), "plain letters, digits and spaces" if is_safe_name(name)
              else "has characters Etsy or the buyer's device may not accept"),
    ]


def count_check(count: int, limits: DeliverySettings) -> Check:
    return Check("count", count <= limits.max_files, f"{count} of {limits.max_files} files per order")
