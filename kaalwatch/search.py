"""What the index's full-text search knows of a job, and how a typed search becomes a safe FTS5 query.

The index keeps one FTS5 row per job (``tokenize='unicode61 remove_diacritics 2'``): case and accents do
not matter ("zoe" finds "Zoë"), and every word the owner types must start a word of the job's text —
receipt id, buyer, listing, personalization answers and notes — so "bis" finds "Biscuit".
"""

from __future__ import annotations

import re

from kaalwatch.model import Job, Order

# The search index's tokenizer; "remove_diacritics 2" also folds letters whose accent is a separate code point.
TOKENIZER = "unicode61 remove_diacritics 2"
MAX_TERMS = 8
_WORD = re.compile(r"\w+", re.UNICODE)


def job_text(order: Order, job: Job) -> str:
    """Everything a search may find this job by, as one text (buyer text included: the index is local)."""
    parts = [str(order.receipt_id), order.buyer_name, job.title, job.sku or ""]
    parts += [answer.answer for answer in job.answers]
    parts += [note.text for note in order.notes if note.job_id in (None, job.job_id)]
    return "\n".join(part for part in parts if part)


def match_query(typed: str) -> str | None:
    """A typed search → an FTS5 MATCH expression: every word as a quoted prefix term (None: no words).

    Quoting each word keeps FTS5's own syntax (AND, NEAR, ``"``, ``*``, column filters) out of reach of
    whatever is typed, so any input is a plain search and never a syntax error.
    """
    words = _WORD.findall(typed)[:MAX_TERMS]
    if not words:
        return None
    return " ".join(f'"{word}"*' for word in words)
