"""Safe, readable file and folder names from hostile text (buyer names, listing titles, upload names).

Whatever comes in, what goes out is a single path component: no separator, no ``..``, no control or
bidirectional-override character, no name Windows reserves, and no more bytes than filesystems allow.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

# Characters Windows forbids in names, plus both separators; replaced rather than dropped so words
# stay apart ("AC/DC" -> "AC-DC").
_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')
_SPACES = re.compile(r"\s+")
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)
_TEMPLATE_KEY = re.compile(r"\{([a-z_]+)\}")

# 255 bytes is the limit of ext4, APFS and NTFS; folder names stay well below it so that the paths of
# files inside them fit Windows' and sync clients' limits too.
DEFAULT_MAX_BYTES = 120


def clean_text(text: object, max_chars: int = 200, *, ellipsis: bool = False) -> str:
    """Printable single-line text from untrusted text: control and format characters (RTL overrides,
    zero-width) removed, line breaks and other whitespace made one space, so "Ann\nMarie" stays two words.

    At most ``max_chars`` characters: cut there, or with ``ellipsis`` ending in "…" (text people read).
    """
    kept = []
    for char in unicodedata.normalize("NFC", str(text)):
        if char.isspace():
            kept.append(" ")
        elif unicodedata.category(char)[0] != "C":  # Cc control, Cf format (bidi marks), Cs, Co, Cn
            kept.append(char)
    line = _SPACES.sub(" ", "".join(kept)).strip()
    if not ellipsis or len(line) <= max_chars:
        return line[:max_chars]
    return line[: max_chars - 1].rstrip() + "…"


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def safe_component(text: str, *, fallback: str = "untitled", max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """One safe path component made from ``text``; ``fallback`` when nothing printable is left."""
    name = clean_text(text, max_chars=10_000)
    name = _FORBIDDEN.sub("-", name)
    name = _truncate_utf8(name, max_bytes)
    # Leading dots would hide the folder (and make "." or ".."); trailing dots and spaces are dropped
    # by Windows, which would make two names collide.
    name = name.strip(" .")
    if not name:
        name = fallback
    if _WINDOWS_RESERVED.match(name):
        name = f"_{name}"
    return name


def format_name(template: str, fields: Mapping[str, object], *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Fill ``{key}`` placeholders from ``fields`` and make the result one safe component.

    Only plain ``{key}`` names are replaced; anything else in the template, and anything inside the
    values (``{receipt_id}`` typed by a buyer, ``{{7*7}}``), stays literal text.
    """

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in fields:
            return match.group(0)
        return safe_component(str(fields[key]), fallback="", max_bytes=max_bytes)

    return safe_component(_TEMPLATE_KEY.sub(replace, template), fallback="order", max_bytes=max_bytes)


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name (2)``, ``name (3)``… whichever is not in ``taken`` (compared case-insensitively)."""
    lowered = {t.casefold() for t in taken}
    if name.casefold() not in lowered:
        return name
    n = 2
    while f"{name} ({n})".casefold() in lowered:
        n += 1
    return f"{name} ({n})"
