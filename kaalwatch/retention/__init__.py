"""Keep buyers' data only as long as the shop promised, then delete or anonymise it — for every order.

The promise (the shop's data-use statement to Etsy): buyer data is kept only as long as needed to fulfil
the order, offer revisions and support, and keep basic records, then deleted or anonymised.

* :mod:`.clock` — one clock for every order: ``retention.files_days`` / ``anonymise_days`` after it
  finished (on Etsy or here, on hold included), ``abandoned_days`` after the last activity for one that
  never finishes; ``keep_until`` (an explicit choice with a reason) postpones it.
* :mod:`.terms` — before the first step, what identifies the buyer is recorded as salted hashes, so later
  saves, notes, manifest fields and paths can be redacted after the plain text is gone.
* :mod:`.plan` — the files step (references, their thumbnails, every version copy and preview except the
  delivered version's) and the identity step (:func:`kaalwatch.lifecycle.anonymise` then
  :func:`kaalwatch.lifecycle.redact`; folder and file names, the artist's small text notes).
* :mod:`.apply` — each order in one critical section under its lock; the watcher's database forgets the
  order's paths, and both SQLite files are rebuilt without freed pages and their WAL emptied.
* :mod:`.daily` — the daily job's record, its catch-up at start-up and the forecast ``status`` shows.

What stays after anonymisation, for the shop's books: receipt id, order/ship-by/delivery/cancellation
dates, Etsy status, listing titles and ids, quantities, the history of states and, where imported, totals
and currency. A dry run reports exactly what the real run then does. Reports and logs carry receipt ids,
reference numbers, hashes, sizes and tool-area paths (made of ids), never buyer text.
"""

from __future__ import annotations

from kaalwatch.retention.apply import purge
from kaalwatch.retention.daily import missed, next_run, scheduled_purge, status_lines

__all__ = ["missed", "next_run", "purge", "scheduled_purge", "status_lines"]
