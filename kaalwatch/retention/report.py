"""What a retention run did (or, in a dry run, would do): lines free of buyer text, and counts that say
exactly what happened — an order counts as anonymised only when its identity was removed in this run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class OrderPurge:
    """What retention does (or would do) to one order; every line free of buyer text."""

    receipt_id: int
    basis: str = "finished"  # "finished" or "no activity": which clock made it due
    removed: list[str] = field(default_factory=list)  # files deleted, one line each
    anonymised: list[str] = field(default_factory=list)  # manifest fields removed or replaced
    renamed: list[str] = field(default_factory=list)  # folder and file renames, text redactions
    bytes_freed: int = 0
    files_step: bool = False  # references / unused versions deleted in this run
    identity_removed: bool = False  # the buyer's name, messages and answers removed in this run
    redactions: int = 0  # later names and texts redacted with the remembered terms


@dataclass
class PurgeReport:
    now: datetime
    dry_run: bool
    orders: list[OrderPurge] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # receipt id -> why retention left it alone
    errors: dict[int, str] = field(default_factory=dict)
    active: int = 0  # orders not due yet (not listed one by one)
    warnings: dict[int, str] = field(default_factory=dict)  # receipt id -> "purged on DATE" (a week ahead)

    def done(self) -> list[OrderPurge]:
        """The orders actually changed (a failed one is counted under errors, not here)."""
        return [o for o in self.orders if o.receipt_id not in self.errors]

    def counts(self) -> dict[str, int]:
        done = self.done()
        return {
            "orders": len(done),
            "files": sum(len(o.removed) for o in done),
            "bytes": sum(o.bytes_freed for o in done),
            "files_purged": sum(1 for o in done if o.files_step),
            "anonymised": sum(1 for o in done if o.identity_removed),
            "redacted": sum(1 for o in done if o.redactions or o.renamed),
            "skipped": len(self.skipped),
            "not_due": self.active,
            "failed": len(self.errors),
            "warned": len(self.warnings),
        }

    def summary(self) -> str:
        c = self.counts()
        verb = "would remove" if self.dry_run else "removed"
        would = "would be " if self.dry_run else ""
        return (f"retention {verb} {c['files']} file(s) ({c['bytes'] / 1_000_000:.1f} MB) from {c['orders']} "
                f"order(s): files purged {would}{c['files_purged']}, anonymised {would}{c['anonymised']}, "
                f"later names or notes redacted {would}{c['redacted']}; {c['skipped']} skipped, "
                f"{c['not_due']} not due, {c['warned']} due within a week, {c['failed']} failed")
