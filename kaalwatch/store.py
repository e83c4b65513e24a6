"""The workspace on disk: order folders, their manifests, the tool-owned area, locks and the index.

Layout (``settings.workspace``)::

    orders/<receipt_id> <buyer> - <listing>/    one folder per Etsy order, the artist's to use
        order.yaml                              the manifest (written only by Workspace.edit/create)
        references/                             buyer uploads, the listing's style sample, hand-dropped files
        deliver/                                deliverables for Etsy's order page
        <n> <listing>/                          one subfolder per job when an order has several items
    .kaalwatch/                                 the tool's own area, never watched, not meant to be synced
        versions/<receipt_id>/<job_id>/         immutable copies of every version
        previews/<receipt_id>/<job_id>/         watermarked previews and thumbnails
        index.sqlite                            a summary of every manifest, for fast listing
        locks/ logs/ state/ secrets/

The identity of an order folder is its manifest, not its name: renamed or moved folders inside
``orders/`` are found again by scanning for ``order.yaml``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from kaalwatch import naming, private
from kaalwatch.atomic import atomic_write_bytes, atomic_write_text
from kaalwatch.deliver_folder import drop_stale
from kaalwatch.errors import ManifestError, NotFoundError, WorkspaceError
from kaalwatch.index import Index, IndexReport
from kaalwatch.manifest import dump_data, order_to_dict
from kaalwatch.manifest_memory import ManifestMemory
from kaalwatch.migrations import SCHEMA_VERSION
from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.vault import Secrets

log = logging.getLogger(__name__)

MANIFEST = "order.yaml"
REFERENCES = "references"
DELIVER = "deliver"
LOCK_TIMEOUT_SECONDS = 30.0


def _dump(order: Order) -> tuple[dict[str, Any], str]:
    data = order_to_dict(order)
    return data, dump_data(data)


def _read_manifest(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"no {MANIFEST} in {path.parent}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text", hint="restore the file; it was left as it is") from None


def _disk_error(exc: OSError, what: Path) -> WorkspaceError:
    if exc.errno == errno.ENOSPC:
        return WorkspaceError(f"disk full while writing {what}", hint="free some space; nothing was changed")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return WorkspaceError(f"cannot write {what}: {exc.strerror}", hint="check the workspace's permissions")
    return WorkspaceError(f"cannot write {what}: {exc.strerror or exc}")


def manifest_backups(folder: Path) -> list[Path]:
    """The copies of an order's manifest kept before its schema was upgraded (they hold buyer data)."""
    return sorted(folder.glob(f"{MANIFEST}.schema*.bak"))


def _keep_original(path: Path, schema: int) -> None:
    """Before the first write of a migrated manifest, keep the file as it was beside it (once)."""
    backup = path.with_name(f"{MANIFEST}.schema{schema}.bak")  # a ".bak" the watcher ignores
    if path.exists() and not backup.exists():
        atomic_write_bytes(backup, path.read_bytes(), mode=0o600)


def _remove_empty_tree(folder: Path | None) -> None:
    """Remove ``folder`` and its subfolders bottom-up if they are empty; never deletes a file."""
    if folder is None:
        return
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def listed_order_folders(root: Path) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
    """The order folders (holding a manifest) at or below ``root``, at any depth (artists make subfolders),
    each with its listing, so that a full rescan lists each folder once. Not looking inside them: an
    order's own subfolders (jobs, references) hold no other order."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        entries = _listing(folder)
        if any(e.name == MANIFEST and e.is_file(follow_symlinks=False) for e in entries):
            yield folder, entries
        else:
            stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))


def _listing(folder: str) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(folder))
    except OSError:
        return []


class Workspace:
    """The workspace folder. Safe to share between threads; several processes coordinate by file locks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.workspace
        self.orders_dir = self.root / "orders"
        self.tool_dir = self.root / ".kaalwatch"
        self.versions_dir = self.tool_dir / "versions"
        self.previews_dir = self.tool_dir / "previews"
        self.tiles_dir = self.tool_dir / "tiles"  # the viewer's tile cache (review_app/views/tiles.py)
        self.locks_dir = self.tool_dir / "locks"
        self.logs_dir = self.tool_dir / "logs"
        self.state_dir = self.tool_dir / "state"
        self.secrets = Secrets(self.tool_dir / "secrets")
        self.secrets_dir = self.secrets.folder
        self.index_path = self.tool_dir / "index.sqlite"
        self.index = Index(self.index_path, self.orders_dir, MANIFEST)
        self.manifests = ManifestMemory()  # an unchanged order.yaml is not parsed again (see the module)
        # Questions about many orders at once are answered by the index (a cache of the manifests), so
        # callers ask the workspace and need not know there is a cache.
        self.jobs = self.index.jobs
        self.state_counts = self.index.state_counts
        self.broken_manifests = self.index.broken_manifests
        self.receipt_ids = self.index.receipt_ids
        self.jobless = self.index.jobless
        self.open_orders_of = self.index.open_orders_of
        self.scrub_index = self.index.scrub

    # ---------------------------------------------------------------------------------------- setup

    def create(self) -> None:
        """Create the folders (idempotent), private to the user (see :mod:`kaalwatch.private`)."""
        try:
            for folder in (self.root, self.tool_dir, self.orders_dir, self.versions_dir, self.previews_dir,
                           self.locks_dir, self.logs_dir, self.state_dir):
                private.make_dir(folder)
            self.secrets.ensure()  # secrets stay private even when private_files is off
        except OSError as exc:
            raise _disk_error(exc, self.root) from None

    def check(self) -> None:
        """Refuse to start on a workspace that is missing or cannot be written (read-only, no permission)."""
        if not self.orders_dir.is_dir() or not self.tool_dir.is_dir():
            raise WorkspaceError(f"no workspace at {self.root}", hint="run `kaalwatch init` first")
        probe = self.tool_dir / f".write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise WorkspaceError(
                f"workspace {self.root} is not writable: {exc.strerror}",
                hint="remount it read-write or fix permissions",
            ) from None

    # ---------------------------------------------------------------------------------------- paths

    def lock(self, receipt_id: int) -> FileLock:
        """The per-order lock; holds across threads and processes (the daemon and a CLI command).

        One instance per lock file in this process (``is_singleton``), re-entrant in the thread holding it:
        retention checks, deletes and edits an order inside one critical section that calls :meth:`edit`.
        """
        private.make_dir(self.locks_dir)
        return FileLock(str(self.locks_dir / f"{int(receipt_id)}.lock"), timeout=LOCK_TIMEOUT_SECONDS,
                        mode=private.file_mode(), is_singleton=True)

    def job_dir(self, order_folder: Path, order: Order, job_id: str) -> Path:
        return order_folder / order.job(job_id).folder if order.job(job_id).folder else order_folder

    def version_copy_path(self, receipt_id: int, job_id: str, number: int, sha256: str, suffix: str) -> Path:
        safe_suffix = suffix.lower() if suffix.isascii() and len(suffix) <= 12 else ".bin"
        return self.versions_dir / str(int(receipt_id)) / naming.safe_component(job_id) / (
            f"v{number:03d}-{sha256[:12]}{safe_suffix}"
        )

    def preview_paths(self, receipt_id: int, job_id: str, number: int, key: str) -> tuple[Path, Path]:
        folder = self.previews_dir / str(int(receipt_id)) / naming.safe_component(job_id)
        return folder / f"v{number:03d}-{key}.jpg", folder / f"v{number:03d}-{key}-thumb.jpg"

    def tool_path(self, relative: str) -> Path:
        """Resolve a path stored in a manifest (relative to the tool area) and refuse any escape."""
        candidate = (self.tool_dir / relative).resolve()
        base = self.tool_dir.resolve()
        if base not in candidate.parents:
            raise NotFoundError(f"{relative!r} is not inside the tool area")
        return candidate

    def relative_to_tool(self, path: Path) -> str:
        return path.resolve().relative_to(self.tool_dir.resolve()).as_posix()

    # ------------------------------------------------------------------------------------- manifests

    def read_folder(self, folder: Path) -> Order:
        """Parse ``folder/order.yaml`` (unless this process already parsed the same text)."""
        path = folder / MANIFEST
        return self.manifests.parse(str(path), _read_manifest(path), str(path))

    def folder_of(self, receipt_id: int) -> Path:
        """The order's folder wherever the artist moved it inside ``orders/``."""
        rel = self.index.folder(receipt_id)
        if rel is not None and (self.orders_dir / rel / MANIFEST).is_file():
            return self.orders_dir / rel
        if rel is not None or not self.index.scanned:
            self.refresh_index()  # moved or renamed by the artist, or never scanned by this process
            rel = self.index.folder(receipt_id)
            if rel is not None:
                return self.orders_dir / rel
        raise NotFoundError(f"no order {receipt_id} in {self.orders_dir}", hint="run `kaalwatch sync`")

    def has_order(self, receipt_id: int) -> bool:
        try:
            self.folder_of(receipt_id)
        except NotFoundError:
            return False
        return True

    def load(self, receipt_id: int) -> Order:
        return self.read_folder(self.folder_of(receipt_id))

    def _write(self, folder: Path, order: Order, dumped: tuple[dict[str, Any], str] | None = None) -> None:
        # The only place a manifest is written; callers are create() and edit(). ``dumped``: the order's data
        # and text (edit() has them from telling whether anything changed).
        path = folder / MANIFEST
        data, text = dumped if dumped is not None else _dump(order)
        try:
            if order.schema < SCHEMA_VERSION:
                _keep_original(path, order.schema)
            atomic_write_text(path, text, mode=0o600)
        except OSError as exc:
            self.manifests.forget(str(path))
            raise _disk_error(exc, path) from None
        order.schema = SCHEMA_VERSION
        self.manifests.wrote(str(path), text, data)
        try:
            self.index.record(folder, order)
        except (WorkspaceError, sqlite3.Error) as exc:
            # The manifest (the truth) is written; raising now would make the caller retry a change that
            # happened. The stale row differs in mtime/size, so the next refresh_index re-reads it.
            log.warning("index not updated for order %s: %s", order.receipt_id, exc)

    def add_order(self, order: Order, *, actor: str = "sync") -> Path:
        """Create the folder, subfolders and manifest of a new order (under its lock)."""
        from kaalwatch.lifecycle import record

        with self.lock(order.receipt_id):
            if self.has_order(order.receipt_id):
                raise WorkspaceError(f"order {order.receipt_id} already exists")
            fields = {
                "receipt_id": order.receipt_id,
                "buyer": order.buyer_name,
                "listing": order.jobs[0].title if order.jobs else "order",
                "date": order.ordered_at.date().isoformat() if order.ordered_at else "",
            }
            name = naming.format_name(self.settings.folder_template, fields)
            folder: Path | None = None
            try:
                private.make_dir(self.orders_dir)
                folder = self._make_unique_dir(name)
                private.make_dir(folder / REFERENCES, exist_ok=False)
                if len(order.jobs) > 1:
                    used: set[str] = set()
                    for position, job in enumerate(order.jobs, start=1):
                        label = naming.safe_component(f"{position} {job.title}", max_bytes=80)
                        job_name = naming.unique_name(label, used)
                        used.add(job_name)
                        job.folder = job_name
                        private.make_dir(folder / job_name, exist_ok=False)
                        private.make_dir(folder / job_name / REFERENCES, exist_ok=False)
            except OSError as exc:
                _remove_empty_tree(folder)
                raise _disk_error(exc, self.orders_dir) from None
            event = record(order, actor, "order_created", None, jobs=[job.job_id for job in order.jobs])
            try:
                self._write(folder, order)
            except BaseException:
                # A creation that failed (disk full) leaves nothing behind: no folder without a manifest for
                # the artist to wonder about, no "(2)" twin on the retry, no event for what did not happen.
                if not (folder / MANIFEST).exists():
                    order.history.remove(event)
                    _remove_empty_tree(folder)
                raise
            return folder

    def _make_unique_dir(self, name: str) -> Path:
        """Create ``orders/name``, or ``name (2)``… — by trying, so it costs nothing per existing order and
        a case-insensitive filesystem's collisions count too."""
        taken: set[str] = set()
        while True:
            folder = self.orders_dir / naming.unique_name(name, taken)
            try:
                private.make_dir(folder, parents=False, exist_ok=False)
            except FileExistsError:
                taken.add(folder.name)
                continue
            return folder

    @contextlib.contextmanager
    def edit(self, receipt_id: int) -> Iterator[Order]:
        """Load the order fresh under its lock, let the caller change it through :mod:`lifecycle`, keep
        ``deliver/`` to the files of ready jobs (:mod:`kaalwatch.deliver_folder`), and write it back
        atomically — only if something changed, so an idle sync touches no file."""
        with self.lock(receipt_id):
            folder = self.folder_of(receipt_id)
            path = folder / MANIFEST
            text = _read_manifest(path)
            order = self.manifests.parse(str(path), text, str(path))
            before = self.manifests.dump_of(str(path), text, order)
            yield order
            if not folder.is_dir():
                # The artist renamed or moved the folder while the block ran: the manifest moved with it
                # (nobody else writes without this lock), so write there rather than bring back a ghost
                # folder holding only a manifest at the old path.
                folder = self.folder_of(receipt_id)
            drop_stale(order, folder / DELIVER)
            data, after = _dump(order)
            if after != before:
                self._write(folder, order, (data, after))

    # ----------------------------------------------------------------------------------- scanning

    def iter_order_folders(self) -> Iterator[Path]:
        """Every folder under ``orders/`` holding an ``order.yaml``, at any depth (artists make subfolders)."""
        return (Path(folder) for folder, _entries in listed_order_folders(self.orders_dir))

    def iter_orders(self) -> Iterator[tuple[Path, Order | ManifestError]]:
        for folder in self.iter_order_folders():
            try:
                yield folder, self.read_folder(folder)
            except ManifestError as exc:
                yield folder, exc

    # -------------------------------------------------------------------------------------- index

    def refresh_index(self) -> IndexReport:
        """Bring the index in line with the manifests on disk, parsing only those that changed.

        Costs one ``stat`` per order folder when nothing changed, so it runs at start-up and on every
        rescan; it also finds folders the artist renamed or moved.
        """
        return self.index.refresh(self.iter_order_folders(), self.read_folder)

    def close(self) -> None:
        self.index.close()

    # ------------------------------------------------------------------------------- small state files

    def read_state(self, name: str) -> dict[str, Any]:
        """A small JSON document in ``.kaalwatch/state`` (sync high-water mark, daemon health…)."""
        path = self.state_dir / f"{naming.safe_component(name)}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing or unreadable: start afresh
            return {}
        return data if isinstance(data, dict) else {}

    def write_state(self, name: str, data: dict[str, Any]) -> None:
        path = self.state_dir / f"{naming.safe_component(name)}.json"
        try:
            atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str))
        except OSError as exc:
            raise _disk_error(exc, path) from None
