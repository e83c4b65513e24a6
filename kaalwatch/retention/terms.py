"""What identifies a buyer, remembered as salted hashes so it can still be redacted after the text is gone.

Before retention's first step on an order it records, in ``.kaalwatch/secrets/retention/<receipt_id>.json``
(0600 in the 0700 secrets folder), the salted SHA-256 of:

* every word of the buyer's name (two letters or more) and their Etsy user id;
* every word of five letters or more in their answers, message and gift message — shorter words are too
  common to redact everywhere ("the", "dog") and rarely identify anyone; the listing's own words (titles,
  questions, the shop's name) are left out, they are the shop's text, not the buyer's;
* the whole stem of the buyer's reference file names and of the order's first folder name.

Only hashes are kept, never the words. A later save named after the buyer, a note quoting them or a path
in the watcher's database is then found by hashing its words: matching is by whole word ("Sage" never
matches inside "usage"), case-insensitive, Unicode-aware.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kaalwatch.model import Order
from kaalwatch.store import Workspace

REPLACEMENT_NAME = "redacted"
REPLACEMENT_TEXT = "[removed]"
MIN_NAME_WORD = 2
MIN_TEXT_WORD = 5
# Letters and digits; "_", "-", "." and spaces separate words, as they do in file names.
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text or "")


@dataclass
class TermMemory:
    """The hashed terms of one order; :meth:`text` and :meth:`name` redact with them."""

    salt: str
    words: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    def _hash(self, term: str) -> str:
        return hashlib.sha256(f"{self.salt}:{term.casefold()}".encode()).hexdigest()[:24]

    def add_words(self, terms: Iterable[str]) -> None:
        self.words.update(self._hash(term) for term in terms)

    def add_names(self, stems: Iterable[str]) -> None:
        self.names.update(self._hash(stem.strip()) for stem in stems if stem.strip())

    def __bool__(self) -> bool:
        return bool(self.words or self.names)

    def text(self, value: str, replacement: str = REPLACEMENT_TEXT) -> str:
        """``value`` with every remembered word replaced (whole words only)."""
        return _WORD.sub(lambda m: replacement if self._hash(m.group()) in self.words else m.group(), value)

    def name(self, value: str) -> str:
        """A file or folder name: a remembered whole stem becomes ``redacted``, else its words do."""
        stem, dot, suffix = value.rpartition(".") if "." in value.lstrip(".") else (value, "", "")
        if self._hash(stem.strip()) in self.names:
            return f"{REPLACEMENT_NAME}{dot}{suffix}"
        return self.text(value, REPLACEMENT_NAME)


def _shop_words(order: Order, shop_name: str) -> set[str]:
    """The shop's own words, and the replacements (redacting "removed" in "[removed]" would never end)."""
    texts = [shop_name] + [job.title for job in order.jobs] + [a.question for job in order.jobs for a in job.answers]
    return {word.casefold() for text in texts for word in words(text)} | {"redacted", "removed", "buyer"}


def learn(memory: TermMemory, order: Order, folder: Path, shop_name: str) -> None:
    """Add what identifies the buyer in ``order`` (read before anonymising it) to ``memory``."""
    if order.anonymised_at is None:
        shop = _shop_words(order, shop_name)
        memory.add_words(w for w in words(order.buyer_name) if len(w) >= MIN_NAME_WORD and w.casefold() not in shop)
        if order.buyer_user_id is not None:
            memory.add_words([str(order.buyer_user_id)])
        texts = [order.message_from_buyer, order.gift_message]
        # A dropdown answer is one of the shop's own options ("Sage", "Navy"), not the buyer's words.
        texts += [a.answer for job in order.jobs for a in job.answers
                  if a.answer != "(removed)" and a.kind != "dropdown"]
        memory.add_words(w for text in texts for w in words(text)
                         if len(w) >= MIN_TEXT_WORD and w.casefold() not in shop)
        memory.add_names(ref.name.rpartition(".")[0] or ref.name for ref in order.references
                         if ref.source == "buyer" and ref.status != "deleted")
        memory.add_names([folder.name])


def load(ws: Workspace, receipt_id: int, salt: str) -> TermMemory:
    memory = TermMemory(salt)
    try:
        data = json.loads(ws.secrets.terms_path(receipt_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return memory
    memory.words.update(str(h) for h in data.get("words", []))
    memory.names.update(str(h) for h in data.get("names", []))
    return memory


def save(ws: Workspace, receipt_id: int, memory: TermMemory) -> None:
    """Write the memory (0600; the secrets folder is 0700 whatever the setting)."""
    ws.secrets.write_text(ws.secrets.terms_path(receipt_id),
                          json.dumps({"words": sorted(memory.words), "names": sorted(memory.names)}))
