"""Planning one order's purge (reads only): which files go, which manifest fields, which names and notes.

The same plan is what a dry run reports and what the real run applies; the manifest text it was made from
is kept, so the apply step can tell that the order changed in between (see :mod:`.apply`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from kaalwatch import lifecycle, naming
from kaalwatch.manifest import dump_manifest
from kaalwatch.model import JobState, Order
from kaalwatch.retention.clock import Due
from kaalwatch.retention.report import OrderPurge
from kaalwatch.retention.terms import TermMemory
from kaalwatch.settings import Settings
from kaalwatch.store import MANIFEST, REFERENCES, Workspace, manifest_backups

# The artist's own notes that may quote the buyer; larger or binary files are artwork, not notes.
TEXT_SUFFIXES = frozenset({".txt", ".md", ".csv", ".json", ".yaml", ".yml", ".html", ".htm", ".xml", ".rtf"})
MAX_TEXT_BYTES = 2_000_000


@dataclass
class Plan:
    report: OrderPurge
    folder: Path
    snapshot: str  # the manifest the plan was made from
    memory: TermMemory
    delete: list[Path] = field(default_factory=list)
    reference_positions: list[int] = field(default_factory=list)
    versions: dict[str, list[int]] = field(default_factory=dict)
    files_step: bool = False
    anonymise: bool = False
    redact: bool = False  # manifest fields to pass through the memory
    renames: list[tuple[Path, Path]] = field(default_factory=list)  # deepest first, then the order folder
    texts: list[Path] = field(default_factory=list)  # relative to the order folder (before renames)

    @property
    def empty(self) -> bool:
        return not (self.files_step or self.anonymise or self.redact or self.renames or self.texts or self.delete)

    def remove(self, path: Path, line: str) -> None:
        """Delete ``path``, reported as ``line`` (free of buyer text)."""
        self.delete.append(path)
        self.report.removed.append(line)
        self.report.bytes_freed += _size(path)


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


def files_under(folder: Path) -> list[Path]:
    """Every file (and symlink) below ``folder``, without following links."""
    found: list[Path] = []
    if not folder.is_dir() or folder.is_symlink():
        return found
    for root, dirs, files in os.walk(folder, followlinks=False):
        found.extend(Path(root) / name for name in files)
        found.extend(Path(root) / name for name in dirs if (Path(root) / name).is_symlink())
    return sorted(found)


def _dirs_under(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, _files in os.walk(folder, followlinks=False):
        found.extend(Path(root) / name for name in dirs)
    return found


def _plan_references(order: Order, folder: Path, plan: Plan) -> None:
    listed: dict[tuple[str | None, str], int] = {(r.job_id, r.name): i for i, r in enumerate(order.references)}
    ref_dirs: list[tuple[str | None, Path]] = [(None, folder / REFERENCES)]
    ref_dirs += [(job.job_id, folder / job.folder / REFERENCES) for job in order.jobs if job.folder]
    unlisted = 0
    for job_id, ref_dir in ref_dirs:
        for path in files_under(ref_dir):
            position = listed.get((job_id, path.name))
            if position is None and job_id is None:
                position = next((i for (_j, n), i in listed.items() if n == path.name), None)
            size = _size(path)
            if position is not None:
                ref = order.references[position]
                plan.remove(path, f"reference #{position + 1} ({ref.source}, sha256 "
                                  f"{(ref.sha256 or _sha12(path))[:12]}, {size} bytes)")
            else:
                unlisted += 1
                where = f" of job {job_id}" if job_id else ""
                plan.remove(path, f"unlisted file #{unlisted} in references/{where} "
                                  f"(sha256 {_sha12(path)}, {size} bytes)")
    plan.reference_positions = [i for i, ref in enumerate(order.references) if ref.status != "deleted"]


def _plan_files(ws: Workspace, order: Order, folder: Path, plan: Plan) -> None:
    """References, their thumbnails, and version files other than the delivered version's."""
    _plan_references(order, folder, plan)
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
                    plan.remove(path, f"{ws.relative_to_tool(path)} (reference thumbnail)")
    rid = str(int(order.receipt_id))
    # The viewer's tiles are a cache cut from version copies: all of them go (a kept version re-tiles on
    # demand), reported as one line rather than hundreds.
    tiles = [path for path in files_under(ws.tiles_dir / rid) if path not in plan.delete]
    if tiles:
        plan.delete.extend(tiles)
        plan.report.removed.append(f"{len(tiles)} viewer tile(s) under {ws.relative_to_tool(ws.tiles_dir / rid)}")
        plan.report.bytes_freed += sum(_size(path) for path in tiles)
    for area in (ws.versions_dir / rid, ws.previews_dir / rid):
        for path in files_under(area):
            if path.resolve() not in keep and path not in plan.delete:
                plan.remove(path, ws.relative_to_tool(path))
    for job_id, numbers in plan.versions.items():
        plan.report.anonymised.append(f"job {job_id}: version file(s) {', '.join(map(str, numbers))} forgotten")
    if plan.delete or plan.reference_positions or plan.versions:
        plan.files_step = plan.report.files_step = True
        if plan.reference_positions:
            plan.report.anonymised.append(f"{len(plan.reference_positions)} reference record(s) marked deleted")


def _plan_identity(ws: Workspace, settings: Settings, order: Order, folder: Path, salt: str, plan: Plan) -> None:
    """The manifest's buyer fields (first time only), then every later name and text the memory knows."""
    trial = copy.deepcopy(order)
    if not order.anonymised_at:
        fields = lifecycle.anonymise(trial, salt)
        plan.anonymise = plan.report.identity_removed = bool(fields)
        plan.report.anonymised.extend(fields)
    redacted = lifecycle.redact(trial, plan.memory.name, plan.memory.text)
    plan.redact = redacted > 0
    plan.report.redactions = redacted
    if redacted:
        plan.report.anonymised.append(f"{redacted} name(s) or text(s) in the manifest redacted")
    for path in sorted(files_under(folder) + _dirs_under(folder), key=lambda p: -len(p.parts)):
        if (path.name == MANIFEST and path.parent == folder) or path in plan.delete:
            continue
        if path.suffix.lower() in TEXT_SUFFIXES and path.is_file() and not path.is_symlink() \
                and _size(path) <= MAX_TEXT_BYTES:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                text = path.read_text(encoding="utf-8")
                if plan.memory.text(text) != text:
                    plan.texts.append(path.relative_to(folder))
        new_name = naming.safe_component(plan.memory.name(path.name))
        if new_name != path.name:
            plan.renames.append((path, path.with_name(new_name)))
    for relative in plan.texts:
        plan.report.renamed.append(f"buyer text removed from a note: {_safe_path(relative, plan.memory)}")
    for _old, new in plan.renames:
        plan.report.renamed.append(f"renamed to {_safe_path(new.relative_to(folder), plan.memory)}")
    _plan_folder_name(ws, settings, order, trial, folder, salt, plan)


def _safe_path(relative: Path, memory: TermMemory) -> str:
    return "/".join(memory.name(part) for part in relative.parts)


def _plan_folder_name(ws: Workspace, settings: Settings, order: Order, trial: Order, folder: Path, salt: str,
                      plan: Plan) -> None:
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
        plan.renames = [(old, new) for old, new in plan.renames if old != folder] + [(folder, target)]
        plan.report.renamed.append(f"order folder renamed to {target.relative_to(ws.orders_dir).as_posix()}")


def plan_order(ws: Workspace, settings: Settings, folder: Path, order: Order, due: Due, salt: str,
               memory: TermMemory) -> Plan | None:
    """The plan for one due order (or one anonymised earlier, checked for later buyer text); None if nothing."""
    plan = Plan(OrderPurge(order.receipt_id, basis=due.basis), folder, dump_manifest(order), memory)
    if due.files:
        _plan_files(ws, order, folder, plan)
    if due.anonymise or order.anonymised_at:
        _plan_identity(ws, settings, order, folder, salt, plan)
    if due.files or due.anonymise or order.anonymised_at:
        for path in manifest_backups(folder):  # the manifest as it was before a schema upgrade: buyer data
            plan.remove(path, f"{path.name} (the manifest before an upgrade)")
    return None if plan.empty else plan
