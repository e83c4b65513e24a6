"""Carrying out the plans: each order in one critical section under its lock, then every store scrubbed.

Under the order's lock, retention re-reads the manifest and applies the plan only if the manifest is still
the one the plan was made from: a job reopened, a new save, a note — anything written in between — stops
the purge of that order for this run (reported as skipped; the next run plans it afresh). Inside the same
lock it records the buyer's terms (before the first step), deletes files, redacts notes (keeping their
mode), renames, and edits the manifest (the per-order lock is re-entrant in its thread).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kaalwatch import lifecycle
from kaalwatch.atomic import atomic_write_text
from kaalwatch.errors import ManifestError, NotFoundError, WorkspaceError
from kaalwatch.manifest import dump_manifest
from kaalwatch.retention import clock, terms
from kaalwatch.retention.plan import Plan, plan_order
from kaalwatch.retention.report import PurgeReport
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace, manifest_backups

log = logging.getLogger(__name__)

ACTOR = "retention"
CHANGED = "changed while retention ran (a job reopened, a new save or an edit): left for the next run"


def _redact_note(path: Path, memory: terms.TermMemory) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)  # the artist's note keeps its mode (0600 stays 0600)
    atomic_write_text(path, memory.text(path.read_text(encoding="utf-8")), mode=mode)


def _apply(ws: Workspace, plan: Plan, salt: str, hook: Callable[[Plan], None] | None) -> bool:
    """Apply one plan in its critical section; False when the order changed since it was planned."""
    rid = plan.report.receipt_id
    if hook is not None:
        hook(plan)
    with ws.lock(rid):
        try:
            current = ws.read_folder(plan.folder)
        except NotFoundError:
            return False  # moved or renamed by the artist since planning
        if dump_manifest(current) != plan.snapshot:
            return False
        terms.save(ws, rid, plan.memory)  # before the first step: the plain text is still there to learn
        for path in plan.delete:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        for relative in plan.texts:
            _redact_note(plan.folder / relative, plan.memory)
        for old, new in plan.renames:
            if new.exists():
                raise WorkspaceError(f"order {rid}: cannot rename, the new name exists")
            os.rename(old, new)
        if plan.renames:
            ws.refresh_index()
        with ws.edit(rid) as order:
            if plan.files_step:
                positions = [i for i in plan.reference_positions if i < len(order.references)]
                versions = {job_id: [n for n in numbers if order.job(job_id).version(n)]
                            for job_id, numbers in plan.versions.items()}
                lifecycle.files_purged(order, positions, versions, ACTOR)
            if plan.anonymise and not order.anonymised_at:
                lifecycle.anonymise(order, salt, ACTOR)
            if plan.anonymise or plan.redact:
                lifecycle.redact(order, plan.memory.name, plan.memory.text, ACTOR)
        for path in manifest_backups(ws.folder_of(rid)):
            path.unlink(missing_ok=True)  # kept by the edit above (its first write after a schema upgrade)
    _remove_empty_dirs(ws, rid)
    return True


def _remove_empty_dirs(ws: Workspace, receipt_id: int) -> None:
    for area in (ws.versions_dir / str(receipt_id), ws.previews_dir / str(receipt_id), ws.tiles_dir / str(receipt_id)):
        for root, _dirs, _files in sorted(os.walk(area), key=lambda entry: -len(entry[0])):
            with contextlib.suppress(OSError):
                Path(root).rmdir()  # only succeeds when empty


def _scrub_stores(ws: Workspace, receipt_ids: list[int]) -> None:
    """The watcher's memory forgets the orders' old paths; both databases keep no freed pages or WAL."""
    from kaalwatch.watch.seen import SeenStore

    seen = SeenStore(ws.tool_dir / "watch.sqlite")
    try:
        for rid in receipt_ids:
            seen.forget_order(rid)
        ws.scrub_index()
    except (sqlite3.Error, WorkspaceError) as exc:
        # Busy for longer than SQLite's timeout (a long rescan): the rows are gone already (secure delete);
        # the next run rebuilds the files again.
        log.warning("retention: could not rebuild a database after purging: %s", exc)
    finally:
        seen.close()


def purge(ws: Workspace, settings: Settings, *, now: datetime, dry_run: bool = False,
          before_apply: Callable[[Plan], None] | None = None) -> PurgeReport:
    """Apply the retention promise to every order (see the package docstring); returns what was done.

    With ``dry_run`` nothing changes on disk, except that the workspace's secret salt is created when an order
    is due and there is none yet (term hashes and the pseudonymous folder name in the report depend on it).
    ``before_apply`` is called between planning and applying each order (a seam for the race test).
    """
    report = PurgeReport(now=now, dry_run=dry_run)
    salt = functools.cache(ws.secrets.salt)
    plans: list[Plan] = []
    for folder, order in sorted(ws.iter_orders(), key=lambda item: str(item[0])):
        if isinstance(order, ManifestError):
            continue  # a broken manifest is reported by the index; retention cannot tell whose it is
        when = clock.due(order, settings, now)
        if when is None or not (when.files or when.anonymise or order.anonymised_at):
            report.active += 1
            if when is not None and when.kept:
                report.skipped[order.receipt_id] = f"kept until {order.keep_until:%Y-%m-%d} by the owner"
            elif when is not None and when.warn(now):
                report.warnings[order.receipt_id] = f"no activity: purged on {when.files_at:%Y-%m-%d}"
            continue
        memory = terms.load(ws, order.receipt_id, salt())
        terms.learn(memory, order, folder, settings.shop_name)
        plan = plan_order(ws, settings, folder, order, when, salt(), memory)
        if plan is not None:
            plans.append(plan)
    plans.sort(key=lambda p: p.report.receipt_id)
    report.orders = [plan.report for plan in plans]
    applied: list[int] = []
    for plan in plans:
        rid = plan.report.receipt_id
        if not dry_run:
            try:
                if not _apply(ws, plan, salt(), before_apply):
                    report.skipped[rid] = CHANGED
                    report.orders.remove(plan.report)
                    log.info("retention: order %s %s", rid, CHANGED)
                    continue
            except (OSError, WorkspaceError, ManifestError) as exc:
                message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                report.errors[rid] = message
                log.error("retention: order %s failed: %s", rid, message)
                continue
            applied.append(rid)
        _log_plan(plan, dry_run)
    if applied:
        _scrub_stores(ws, applied)
    log.info("%s", report.summary())
    return report


def _log_plan(plan: Plan, dry_run: bool) -> None:
    prefix = "retention (dry run)" if dry_run else "retention"
    rid = plan.report.receipt_id
    for line in plan.report.removed:
        log.info("%s: order %s: deleted %s", prefix, rid, line)
    if plan.report.anonymised:
        log.info("%s: order %s: manifest: %s", prefix, rid, "; ".join(plan.report.anonymised))
    if plan.report.renamed:
        log.info("%s: order %s: %d rename(s) or redaction(s) in its folder", prefix, rid, len(plan.report.renamed))
