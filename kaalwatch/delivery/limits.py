"""Etsy's limits on the files of a made-to-order digital delivery, and the safe names that meet them.

Etsy's order page takes at most 5 files per order, each at most 20 MB, each name at most 70 characters
(Etsy's help for made-to-order digital items). Names are plain ASCII here: buyers download them on every kind of
device, and Etsy has been seen to mangle accents and symbols in uploaded names.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from kaalwatch.settings import DeliverySettings

# Etsy does not say whether its "MB" is 10^6 or 2^20 bytes; the smaller reading is the one that is always safe.
BYTES_PER_MB = 1_000_000

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()+-]+")
_SPACES = re.compile(r"\s+")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]*\.[a-z0-9]{2,4}$")


def max_bytes(limits: DeliverySettings) -> int:
    return int(limits.max_file_mb * BYTES_PER_MB)


_DOTS = re.compile(r"\.{2,}")


def ascii_words(text: str) -> str:
    """``text`` folded to plain ASCII words (accents dropped, anything else a space)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    folded = _DOTS.sub(".", folded)  # "0..0" is no path trick in a name, but the safety check refuses ".."
    return _SPACES.sub(" ", _UNSAFE.sub(" ", folded)).strip(" .")


def is_safe_name(name: str) -> bool:
    """ASCII letters, digits, spaces and ``._()+-``, a short lower-case extension, no leading dot."""
    return bool(_SAFE_NAME.match(name)) and ".." not in name


def deliverable_name(receipt_id: int, listing: str, labels: list[str], extension: str, *, max_length: int,
                     taken: set[str]) -> str:
    """``"{receipt_id} {listing} {labels…}.{ext}"`` shortened to ``max_length`` characters and unique.

    The listing title is what gets shortened (at a word boundary when it can): the receipt id and the
    labels (item number, "print 8x10") are what tell the buyer the files apart.
    """
    ext = "." + extension.lower().lstrip(".")
    tail = " ".join(part for part in (ascii_words(label) for label in labels) if part)
    title = ascii_words(listing)
    for attempt in range(1, 1000):
        unique = f" ({attempt})" if attempt > 1 else ""
        fixed = f"{int(receipt_id)}" + (f" {tail}" if tail else "") + unique + ext
        room = max_length - len(fixed) - 1  # one space between the receipt id and the title
        short = title
        if len(short) > room:
            cut = short[: max(room, 0)]
            short = cut.rsplit(" ", 1)[0] if " " in cut and len(cut.rsplit(" ", 1)[0]) >= room // 2 else cut
            short = short.strip(" .-")
        stem = f"{int(receipt_id)}" + (f" {short}" if short else "") + (f" {tail}" if tail else "") + unique
        name = stem + ext
        if len(name) > max_length:
            # Labels alone do not fit: keep the receipt id and the extension, drop the rest.
            name = f"{int(receipt_id)}{unique}{ext}"
        if name.casefold() not in {t.casefold() for t in taken}:
            return name
    raise ValueError("no free deliverable name")  # a thousand collisions: a bug, not a user error


@dataclass(frozen=True)
class Check:
    """One of Etsy's limits against one file (or the order as a whole)."""

    limit: str  # size, name_length, name_safe, count
    ok: bool
    detail: str


def file_checks(name: str, size: int, limits: DeliverySettings) -> list[Check]:
    cap = max_bytes(limits)
    return [
        Check("size", size <= cap, f"{size / BYTES_PER_MB:.1f} MB of {limits.max_file_mb:g} MB"),
        Check("name_length", len(name) <= limits.max_name_length,
              f"{len(name)} of {limits.max_name_length} characters"),
        Check("name_safe", is_safe_name(name), "plain letters, digits and spaces" if is_safe_name(name)
              else "has characters Etsy or the buyer's device may not accept"),
    ]


def count_check(count: int, limits: DeliverySettings) -> Check:
    return Check("count", count <= limits.max_files, f"{count} of {limits.max_files} files per order")
