"""Map a path under ``orders/`` to its order, its job, and what the file is there (artwork, reference, …).

The order folder is the nearest folder upward holding an ``order.yaml`` (folders can be renamed and moved
by the artist; the manifest is the identity). Inside it the layout decides the role:

- a single-item order: artwork anywhere in the folder except ``references/`` and ``deliver/``;
- a multi-item order: artwork inside a job's folder; artwork at the top (or in an unknown folder) is
  *misplaced* and reported on the order, because it cannot be told which job it belongs to;
- ``references/`` (of the order or of a job): hand-dropped references;
- hidden folders, litter names, ``deliver/``, ``order.yaml`` and non-artwork suffixes: ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kaalwatch.model import Order
from kaalwatch.store import DELIVER, MANIFEST, REFERENCES
from kaalwatch.watch.ignore import IgnoreRules, is_artwork_name


class Role(enum.StrEnum):
    ARTWORK = "artwork"
    REFERENCE = "reference"
    MISPLACED = "misplaced"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Location:
    """Where a file sits: ``rel`` is relative to the order folder, ``job_rel`` to the job's folder."""

    order_folder: Path
    receipt_id: int
    job_id: str | None
    rel: str
    role: Role
    job_rel: str = ""


def find_order_folder(path: Path, orders_dir: Path) -> Path | None:
    """The nearest folder at or above ``path``'s parent, inside ``orders_dir``, that holds a manifest."""
    try:
        path.relative_to(orders_dir)
    except ValueError:
        return None
    folder = path.parent
    while folder != orders_dir and orders_dir in folder.parents:
        if (folder / MANIFEST).is_file():
            return folder
        folder = folder.parent
    return None


def role_in_order(parts: tuple[str, ...], order: Order, rules: IgnoreRules) -> tuple[Role, str | None, str]:
    """Pure: the role, job id and path-within-the-job of a file at ``parts`` relative to its order folder."""
    if not parts or parts == (MANIFEST,) or any(p in ("", ".", "..") for p in parts):
        return Role.IGNORED, None, ""
    if any(rules.ignores_dir(p) for p in parts[:-1]) or rules.ignores(parts[-1]):
        return Role.IGNORED, None, ""
    if len(order.jobs) == 1 and not order.jobs[0].folder:
        return _inside_job(parts, order.jobs[0].job_id)
    by_folder = {job.folder: job.job_id for job in order.jobs if job.folder}
    if parts[0] in by_folder and len(parts) > 1:
        return _inside_job(parts[1:], by_folder[parts[0]])
    return _inside_job(parts, None, artwork=Role.MISPLACED)  # beside the job folders: no job's artwork


def _inside_job(parts: tuple[str, ...], job_id: str | None,
                artwork: Role = Role.ARTWORK) -> tuple[Role, str | None, str]:
    if parts[0] == REFERENCES:
        # Only files directly in references/: a subfolder there is the artist's own filing.
        return (Role.REFERENCE, job_id, parts[1]) if len(parts) == 2 else (Role.IGNORED, None, "")
    if parts[0] == DELIVER:
        return Role.IGNORED, None, ""
    if is_artwork_name(parts[-1]):
        return artwork, job_id, "/".join(parts)
    return Role.IGNORED, None, ""


def locate_in(order_folder: Path, order: Order, path: Path, rules: IgnoreRules) -> Location:
    rel = PurePosixPath(path.relative_to(order_folder).as_posix())
    role, job_id, job_rel = role_in_order(rel.parts, order, rules)
    return Location(order_folder, order.receipt_id, job_id, rel.as_posix(), role, job_rel)
