"""Deliverable file names from a template, cut at a word boundary to Etsy's length, unique and safe.

Fields: ``{receipt_id}``, ``{buyer_first}``, ``{answer:Pet name}`` (the answer to that personalization
question), ``{listing}``, ``{listing_short}`` (the title up to its first separator: Etsy titles are keyword
lists), ``{item}`` ("item 2" in an order of several artworks, else nothing) and ``{variant}`` (the
deliverable's ``suffix``, e.g. "print 8x10"). Every field is hostile text folded to plain ASCII words; a name
too long loses words of its longest free-text field first, so the receipt id and the variant — what tells the
buyer the files apart — stay.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()+-]+")
_SPACES = re.compile(r"\s+")
_DOTS = re.compile(r"\.{2,}")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]*\.[a-z0-9]{2,4}$")
_FIELD = re.compile(r"\{(answer:[^{}]{1,200}|[a-z_]+)\}")
_TITLE_BREAK = re.compile(r"\s*(?:[,|:;/]|\s[-–—]\s)\s*")
# Fields a name may lose words of when it is too long; the others identify the file.
SHORTENABLE = ("listing", "listing_short", "buyer_first")


def ascii_words(text: str) -> str:
    """``text`` folded to plain ASCII words (accents dropped, anything else a space)."""
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    folded = _DOTS.sub(".", folded)  # "0..0" is no path trick in a name, but the safety check refuses ".."
    return _SPACES.sub(" ", _UNSAFE.sub(" ", folded)).strip(" .")


def is_safe_name(name: str) -> bool:
    """ASCII letters, digits, spaces and ``._()+-``, a short lower-case extension, no leading dot."""
    return bool(_SAFE_NAME.match(name)) and ".." not in name


def listing_short(title: str) -> str:
    """The listing title up to its first separator ("Custom Pet Portrait, Dog Art | Gift" → "Custom Pet Portrait")."""
    head = _TITLE_BREAK.split(title.strip(), maxsplit=1)[0]
    return head if len(ascii_words(head)) >= 3 else title


def cut_words(text: str, room: int) -> str:
    """``text`` shortened to ``room`` characters at a word boundary (nothing rather than half a word)."""
    if len(text) <= room:
        return text
    if room <= 0:
        return ""
    cut = text[: room + 1]
    return cut.rsplit(" ", 1)[0].rstrip(" .-") if " " in cut else ""


def _norm(question: str) -> str:
    return ascii_words(question).casefold()


def name_fields(receipt_id: int, buyer: str, title: str, answers: Mapping[str, str], *, item: int | None,
                variant: str) -> dict[str, str]:
    """The template fields of one deliverable, each already plain ASCII words."""
    fields = {
        "receipt_id": str(int(receipt_id)),
        "buyer_first": ascii_words(buyer.split()[0] if buyer.split() else ""),
        "listing": ascii_words(title),
        "listing_short": ascii_words(listing_short(title)),
        "item": f"item {item}" if item else "",
        "variant": ascii_words(variant),
    }
    for question, answer in answers.items():
        fields[f"answer:{_norm(question)}"] = ascii_words(answer)
    return fields


def _field_key(raw: str) -> str:
    return f"answer:{_norm(raw[7:])}" if raw.startswith("answer:") else raw


def _render(template: str, fields: Mapping[str, str]) -> str:
    return ascii_words(_FIELD.sub(lambda m: f" {fields.get(_field_key(m.group(1)), '')} ", template))


def fill(template: str, fields: Mapping[str, str], extension: str, *, max_length: int, taken: set[str]) -> str:
    """The file name ``template`` makes from ``fields``: at most ``max_length`` characters, safe, not in ``taken``."""
    ext = "." + extension.lower().lstrip(".")
    values = dict(fields)
    used = [_field_key(m.group(1)) for m in _FIELD.finditer(template)]
    shortenable = [key for key in used if key in SHORTENABLE or key.startswith("answer:")]
    lowered = {t.casefold() for t in taken}
    for attempt in range(1, 1000):
        unique = f" ({attempt})" if attempt > 1 else ""
        room = max_length - len(ext) - len(unique)
        stem = _render(template, values)
        while len(stem) > room and any(values.get(key) for key in shortenable):
            longest = max(shortenable, key=lambda key: len(values.get(key, "")))
            value = values[longest]
            values[longest] = cut_words(value, len(value) - (len(stem) - room))
            if values[longest] == value:  # one word longer than the whole excess: drop it
                values[longest] = value.rsplit(" ", 1)[0] if " " in value else ""
            stem = _render(template, values)
        stem = cut_words(stem, room) or stem[:room]
        stem = stem.lstrip(" ._()+-").rstrip(" .")
        if not stem or not stem[0].isalnum():
            stem = fields.get("receipt_id", "file")
        name = stem + unique + ext
        if is_safe_name(name) and len(name) <= max_length and name.casefold() not in lowered:
            return name
    raise ValueError("no free deliverable name")  # a thousand collisions: a bug, not a user error
