"""Keep buyers' data only as long as the shop promised: delete references and unused versions, then anonymise.

The promise (the shop's data-use statement to Etsy): buyer data is kept only as long as needed to fulfil
the order, offer revisions and support, and keep basic records, then deleted or anonymised. Counting from
``order.finished_at`` (every job delivered or cancelled):

* after ``retention.files_days``: the buyer's reference files, their thumbnails, and every version copy and
  preview except the delivered version's are deleted; the manifest stops pointing at them;
* after ``retention.anonymise_days``: the manifest is anonymised (:func:`lifecycle.anonymise`: a stable
  pseudonym for the buyer; answers, messages and notes removed; ids, dates, listings, amounts and the
  history of states kept), the order folder is renamed to drop the buyer's name, buyer text is taken out of
  the names of files in it and out of the artist's small text notes. Anonymising implies the file step.

An order with a job not delivered or cancelled (on hold included) is never touched. :func:`purge` first
plans, then (unless ``dry_run``) carries out exactly that plan, so a dry run reports what the real run
will do. Reports and logs describe what was removed without buyer text: receipt ids, reference numbers,
hashes, sizes, and tool-area paths (which are made of ids).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from kaalwatch import lifecycle, naming
from kaalwatch.atomic import atomic_write_text
from kaalwatch.errors import ManifestError, WorkspaceError
from kaalwatch.model import JobState, Order, iso, utcnow
from kaalwatch.settings import Settings
from kaalwatch.store import MANIFEST, REFERENCES, Workspace

log = logging.getLogger(__name__)

ACTOR = "retention"
SALT_FILE = "pseudonym_salt"
# The artist's own notes that may quote the buyer; larger or binary files are artwork, not notes.
TEXT_SUFFIXES = frozenset({".txt", ".md", ".csv", ".json", ".yaml", ".yml", ".html", ".htm", ".xml", ".rtf"})
MAX_TEXT_BYTES = 2_000_000
REDACTED_NAME = "redacted"
REDACTED_TEXT = "[removed]"
_MIN_TERM = 3  # shorter name parts ("Al", "Jo") would match inside ordinary words


@dataclass
class OrderPurge:
    """What retention does (or would do) to one order; every line free of buyer text."""

    receipt_id: int
    removed: list[str] = field(default_factory=list)  # files deleted, one line each
    anonymised: list[str] = field(default_factory=list)  # manifest fields removed or replaced
    renamed: list[str] = field(default_factory=list)  # folder and file renames, text redactions
    bytes_freed: int = 0


@dataclass
class PurgeReport:
    now: datetime
    dry_run: bool
    orders: list[OrderPurge] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # receipt id -> why retention left it alone
    errors: dict[int, str] = field(default_factory=dict)
    active: int = 0  # orders not finished yet (not listed one by one)

    def plan(self) -> tuple[list[OrderPurge], dict[int, str]]:
        """What is compared between a dry run and the real run."""
        return self.orders, self.skipped

    def summary(self) -> str:
        files = sum(len(o.removed) for o in self.orders)
        anonymised = sum(1 for o in self.orders if o.anonymised)
        mb = sum(o.bytes_freed for o in self.orders) / 1_000_000
        verb = "would remove" if self.dry_run else "removed"
        return (f"retention {verb} {files} file(s) ({mb:.1f} MB) from {len(self.orders)} order(s), anonymised "
                f"{anonymised}; {len(self.skipped)} skipped, {self.active} still open, {len(self.errors)} failed")


# --------------------------------------------------------------------------------------------------
# Planning (reads only)


@dataclass
class _Plan:
    report: OrderPurge
    folder: Path
    delete: list[Path] = field(default_factory=list)
    reference_positions: list[int] = field(default_factory=list)
    versions: dict[str, list[int]] = field(default_factory=dict)
    files_step: bool = False
    anonymise: bool = False
    terms: list[str] = field(default_factory=list)
    text_terms: list[str] = field(default_factory=list)
    renames: list[tuple[Path, Path]] = field(default_factory=list)  # deepest first, then the order folder
    texts: list[Path] = field(default_factory=list)  # relative to the order folder (before renames)


def _sha12(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _files_under(folder: Path) -> list[Path]:
    """Every file (and symlink) below ``folder``, without following links."""
    found: list[Path] = []
    if not folder.is_dir() or folder.is_symlink():
        return found
    for root, dirs, files in os.walk(folder, followlinks=False):
        found.extend(Path(root) / name for name in files)
        found.extend(Path(root) / name for name in dirs if (Path(root) / name).is_symlink())
    return sorted(found)


def personal_terms(order: Order) -> list[str]:
    """Buyer text that must not survive in file names: the name (and its parts) and every answer."""
    terms: set[str] = set()
    name = naming.clean_text(order.buyer_name)
    if name and name != order.pseudonym:
        terms.add(name)
        terms.update(part for part in re.split(r"[\s,.'-]+", name) if len(part) >= _MIN_TERM)
    for job in order.jobs:
        for answer in job.answers:
            text = naming.clean_text(answer.answer)
            if len(text) >= _MIN_TERM and text != "(removed)":
                terms.add(text)
    # Longest first, so "Ada Lovelace" is replaced whole before "Ada" is looked for.
    return sorted(terms, key=lambda t: (-len(t), t.casefold()))


def _text_terms(order: Order, terms: list[str]) -> list[str]:
    messages = [naming.clean_text(text, 10_000) for text in (order.message_from_buyer, order.gift_message)]
    return sorted(set(terms) | {m for m in messages if len(m) >= _MIN_TERM}, key=lambda t: (-len(t), t))


def _contains(text: str, terms: list[str]) -> bool:
    folded = text.casefold()
    return any(term.casefold() in folded for term in terms)


def _redact(text: str, terms: list[str], replacement: str) -> str:
    for term in terms:
        text = re.sub(re.escape(term), replacement, text, flags=re.IGNORECASE)
    return text


def _plan_files(ws: Workspace, order: Order, folder: Path, plan: _Plan) -> None:
    """References, their thumbnails, and version files other than the delivered version's."""
    listed: dict[tuple[str | None, str], int] = {(r.job_id, r.name): i for i, r in enumerate(order.references)}
    ref_dirs: list[tuple[str | None, Path]] = [(None, folder / REFERENCES)]
    ref_dirs += [(job.job_id, folder / job.folder / REFERENCES) for job in order.jobs if job.folder]
    unlisted = 0
    for job_id, ref_dir in ref_dirs:
        for path in _files_under(ref_dir):
            position = listed.get((job_id, path.name))
            if position is None and job_id is None:
                position = next((i for (_j, n), i in listed.items() if n == path.name), None)
            size = _size(path)
            if position is not None:
                ref = order.references[position]
                plan.report.removed.append(f"reference #{position + 1} ({ref.source}, sha256 "
                                           f"{(ref.sha256 or _sha12(path))[:12]}, {size} bytes)")
            else:
                unlisted += 1
                where = f" of job {job_id}" if job_id else ""
                plan.report.removed.append(f"unlisted file #{unlisted} in references/{where} "
                                           f"(sha256 {_sha12(path)}, {size} bytes)")
            plan.delete.append(path)
            plan.report.bytes_freed += size
    plan.reference_positions = [i for i, ref in enumerate(order.references) if ref.status != "deleted"]

    keep: set[Path] = set()
    for job in order.jobs:
        kept = job.approved_version if job.state is JobState.DELIVERED else None
        numbers = []
        for version in job.versions:
            if version.number == kept:
                keep.update(ws.tool_path(p) for p in (version.copy, version.preview, version.thumb) if p)
            elif version.copy or version.preview or version.thumb:
                numbers.append(version.number)
        if numbers:
            plan.versions[job.job_id] = numbers
    for ref in order.references:
        if ref.thumb:
            with contextlib.suppress(Exception):
                path = ws.tool_path(ref.thumb)
                if path.is_file() and path not in plan.delete:
                    plan.delete.append(path)
                    plan.report.removed.append(f"{ws.relative_to_tool(path)} (reference thumbnail)")
                    plan.report.bytes_freed += _size(path)
    rid = str(int(order.receipt_id))
    for area in (ws.versions_dir / rid, ws.previews_dir / rid):
        for path in _files_under(area):
            if path.resolve() in keep or path in plan.delete:
                continue
            plan.delete.append(path)
            plan.report.removed.append(ws.relative_to_tool(path))
            plan.report.bytes_freed += _size(path)
    for job_id, numbers in plan.versions.items():
        plan.report.anonymised.append(f"job {job_id}: version file(s) {', '.join(map(str, numbers))} forgotten")
    if plan.delete or plan.reference_positions or plan.versions:
        plan.files_step = True
        if plan.reference_positions:
            plan.report.anonymised.append(f"{len(plan.reference_positions)} reference record(s) marked deleted")


def _plan_anonymise(ws: Workspace, settings: Settings, order: Order, folder: Path, salt: str,
                    plan: _Plan) -> None:
    trial = copy.deepcopy(order)
    terms = personal_terms(order)
    plan.terms = terms
    fields = lifecycle.anonymise(trial, salt) if not order.anonymised_at else []
    renamed = lifecycle.redact_file_names(trial, terms)
    plan.anonymise = bool(fields or renamed)
    plan.report.anonymised.extend(fields)
    if renamed:
        plan.report.anonymised.append(f"{renamed} file name(s) in the manifest")
    text_terms = plan.text_terms = _text_terms(order, terms)
    # Files inside the order folder: names holding buyer text are renamed, small text notes redacted.
    for path in sorted(_files_under(folder) + _dirs_under(folder), key=lambda p: -len(p.parts)):
        relative = path.relative_to(folder)
        if path.name == MANIFEST and path.parent == folder:
            continue
        if path.suffix.lower() in TEXT_SUFFIXES and path.is_file() and not path.is_symlink() \
                and _size(path) <= MAX_TEXT_BYTES and path not in plan.delete:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if _contains(path.read_text(encoding="utf-8"), text_terms):
                    plan.texts.append(relative)
        if terms and _contains(path.name, terms) and path not in plan.delete:
            new = path.with_name(naming.safe_component(_redact(path.name, terms, REDACTED_NAME)))
            plan.renames.append((path, new))
    for relative in plan.texts:
        plan.report.renamed.append(f"buyer text removed from a note: {_redact_path(relative, terms)}")
    for _old, new in plan.renames:
        plan.report.renamed.append(f"renamed to {_redact_path(new.relative_to(folder), terms)}")
    fields_for_name = {
        "receipt_id": order.receipt_id,
        "buyer": trial.pseudonym or lifecycle.pseudonym_for(order.receipt_id, salt),
        "listing": order.jobs[0].title if order.jobs else "order",
        "date": order.ordered_at.date().isoformat() if order.ordered_at else "",
    }
    wanted = naming.format_name(settings.folder_template, fields_for_name)
    if folder.name != wanted and not re.fullmatch(re.escape(wanted) + r" \(\d+\)", folder.name):
        taken = {p.name for p in folder.parent.iterdir() if p != folder}
        target = folder.parent / naming.unique_name(wanted, taken)
        plan.renames.append((folder, target))
        plan.report.renamed.append(f"order folder renamed to {target.relative_to(ws.orders_dir).as_posix()}")


def _dirs_under(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, _files in os.walk(folder, followlinks=False):
        found.extend(Path(root) / name for name in dirs)
    return found


def _redact_path(relative: Path, terms: list[str]) -> str:
    return _redact(relative.as_posix(), terms, REDACTED_NAME)


def _plan(ws: Workspace, settings: Settings, folder: Path, order: Order, now: datetime,
          salt: Callable[[], str]) -> _Plan | str | None:
    """The plan for one order, a reason it is left alone, or None when nothing is due."""
    if any(job.state is JobState.ON_HOLD for job in order.jobs):
        return "on hold"
    finished = order.finished_at
    if finished is None:
        return None
    age = now - finished
    anonymise_due = age >= timedelta(days=settings.retention.anonymise_days)
    files_due = anonymise_due or age >= timedelta(days=settings.retention.files_days)
    if not files_due:
        return None
    plan = _Plan(OrderPurge(order.receipt_id), folder)
    _plan_files(ws, order, folder, plan)
    if anonymise_due:
        _plan_anonymise(ws, settings, order, folder, salt(), plan)
    if not (plan.files_step or plan.anonymise or plan.renames or plan.texts):
        return None
    return plan


# --------------------------------------------------------------------------------------------------
# Carrying out


def pseudonym_salt(ws: Workspace) -> str:
    """The workspace's secret salt for pseudonyms, created once (0600) so pseudonyms stay stable."""
    path = ws.secrets_dir / SALT_FILE
    ws.secrets_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(ws.secrets_dir, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        salt = path.read_text(encoding="ascii").strip()
        if not salt:
            raise WorkspaceError(f"{path} is empty", hint="restore it from a backup; pseudonyms depend on it") from None
        return salt
    salt = secrets.token_hex(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(salt + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return salt


def _still_eligible(order: Order) -> bool:
    return order.finished_at is not None and not any(job.state is JobState.ON_HOLD for job in order.jobs)


def _apply(ws: Workspace, plan: _Plan, salt: str) -> None:
    rid = plan.report.receipt_id
    with ws.lock(rid):
        if not _still_eligible(ws.read_folder(plan.folder)):
            raise WorkspaceError(f"order {rid} was reopened while retention ran; left as it is")
        for path in plan.delete:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        for relative in plan.texts:
            path = plan.folder / relative
            text = path.read_text(encoding="utf-8")
            atomic_write_text(path, _redact(text, plan.text_terms, REDACTED_TEXT))
        for old, new in plan.renames:
            if new.exists():
                raise WorkspaceError(f"order {rid}: cannot rename, {new.name} exists")
            os.rename(old, new)
    if plan.renames:
        ws.refresh_index()
    with ws.edit(rid) as order:
        if plan.files_step:
            positions = [i for i in plan.reference_positions if i < len(order.references)]
            versions = {job_id: [n for n in numbers if order.job(job_id).version(n)]
                        for job_id, numbers in plan.versions.items()}
            lifecycle.files_purged(order, positions, versions, ACTOR)
        if plan.anonymise:
            if not order.anonymised_at:
                lifecycle.anonymise(order, salt, ACTOR)
            lifecycle.redact_file_names(order, plan.terms, ACTOR)
    _remove_empty_dirs(ws, rid)


def _remove_empty_dirs(ws: Workspace, receipt_id: int) -> None:
    for area in (ws.versions_dir / str(receipt_id), ws.previews_dir / str(receipt_id)):
        for root, _dirs, _files in sorted(os.walk(area), key=lambda entry: -len(entry[0])):
            with contextlib.suppress(OSError):
                Path(root).rmdir()  # only succeeds when empty


def purge(ws: Workspace, settings: Settings, *, now: datetime, dry_run: bool = False) -> PurgeReport:
    """Apply the retention promise to every order (see the module docstring); returns what was done.

    With ``dry_run`` nothing changes on disk, except that the pseudonym salt is created when an order is due
    for anonymising and there is none yet (the report names the pseudonymous folder it will get).
    """
    report = PurgeReport(now=now, dry_run=dry_run)
    salt = functools.cache(lambda: pseudonym_salt(ws))  # created only when an order is due for anonymising
    plans: list[_Plan] = []
    for folder, order in sorted(ws.iter_orders(), key=lambda item: str(item[0])):
        if isinstance(order, ManifestError):
            continue  # a broken manifest is reported by the index; retention cannot tell whose it is
        outcome = _plan(ws, settings, folder, order, now, salt)
        if isinstance(outcome, str):
            report.skipped[order.receipt_id] = outcome
        elif outcome is None:
            if order.finished_at is None:
                report.active += 1
        else:
            plans.append(outcome)
    plans.sort(key=lambda p: p.report.receipt_id)
    report.orders = [plan.report for plan in plans]
    for plan in plans:
        rid = plan.report.receipt_id
        if not dry_run:
            try:
                _apply(ws, plan, salt())
            except (OSError, WorkspaceError, ManifestError) as exc:
                message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                report.errors[rid] = message
                log.error("retention: order %s failed: %s", rid, message)
                continue
        prefix = "retention (dry run)" if dry_run else "retention"
        for line in plan.report.removed:
            log.info("%s: order %s: deleted %s", prefix, rid, line)
        if plan.report.anonymised:
            log.info("%s: order %s: manifest: %s", prefix, rid, "; ".join(plan.report.anonymised))
        if plan.report.renamed:
            log.info("%s: order %s: %d rename(s) or redaction(s) in its folder", prefix, rid,
                     len(plan.report.renamed))
    log.info("%s", report.summary())
    return report


def scheduled_purge(ws: Workspace, settings: Settings, *, now: datetime | None = None) -> PurgeReport:
    """The daily job (the daemon runs it at ``retention.run_hour``): purge, and remember when and what."""
    moment = now or utcnow()
    report = purge(ws, settings, now=moment)
    ws.write_state("retention", {"last_run": iso(moment), "summary": report.summary(),
                                 "errors": {str(k): v for k, v in report.errors.items()}})
    return report


def next_run(settings: Settings, after: datetime) -> datetime:
    """The next local ``run_hour`` o'clock strictly after ``after`` (for schedulers without cron triggers)."""
    local = after.astimezone()
    candidate = local.replace(hour=settings.retention.run_hour, minute=0, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


__all__ = ["OrderPurge", "PurgeReport", "next_run", "personal_terms", "pseudonym_salt", "purge",
           "scheduled_purge"]
