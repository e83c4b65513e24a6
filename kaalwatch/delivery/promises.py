"""What a job's workflow promises, laid on its approved artwork before anything is built.

The panel shows this plan (frame, final pixels, warnings) and :mod:`kaalwatch.delivery.preparing` builds
exactly it: both call :func:`plan_job`, so the preview and the file cannot disagree.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageCms

from kaalwatch.delivery.framing import Frame, plan, promise_key, saved_position
from kaalwatch.delivery.limits import Check
from kaalwatch.model import Job, Version
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings, Workflow
from kaalwatch.store import Workspace
from kaalwatch.workflows import by_name

# EXIF orientations that turn the stored pixels a quarter turn (width and height swap).
_QUARTER_TURNS = (5, 6, 7, 8)


@dataclass
class PlannedFile:
    """One promised file of one job's approved ``version``: its key, geometry and the promises it would miss
    (the delivery panel shows these before anything is built)."""

    job_id: str
    version: int
    key: str
    promise: Promise
    frame: Frame
    describe: str

    @property
    def warnings(self) -> list[Check]:
        return self.frame.warnings

    @property
    def view_box(self) -> str:
        """The SVG view of the output sheet in artwork pixels (wider than the art when it has margins)."""
        f = self.frame
        if not f.margins:
            return f"0 0 {f.width} {f.height}"
        cw, ch = (round(f.canvas[0]), round(f.canvas[1]))
        return f"{-round((cw - f.width) * f.position)} {-round((ch - f.height) * f.position)} {cw} {ch}"

    @property
    def margin_colour(self) -> str:
        return self.promise.margin_colour


@dataclass
class JobPlan:
    job_id: str
    version: int
    files: list[PlannedFile] = field(default_factory=list)
    job_checks: list[Check] = field(default_factory=list)  # quantity, colour: about the job, not one file

    @property
    def warnings(self) -> list[str]:
        out = [f"{check.detail}" for check in self.job_checks if not check.ok]
        out += [f"{item.describe}: {check.detail}" for item in self.files for check in item.warnings]
        return out


def workflow_of(settings: Settings, job: Job) -> Workflow:
    return by_name(settings.workflows, settings.default_workflow, job.workflow)


def promises(settings: Settings, job: Job) -> tuple[Promise, ...]:
    return workflow_of(settings, job).deliverables


def describe(promise: Promise) -> str:
    """The promise in words: "PDF 'print 8x10' 8x10 in at 300 DPI"."""
    words = [promise.format.upper()]
    if promise.suffix:
        words.append(f"'{promise.suffix}'")
    if promise.print_inches:
        words.append(f"{promise.print_inches} in")
    elif promise.aspect:
        words.append(promise.aspect)
    if promise.long_edge:
        words.append(f"{promise.long_edge} px")
    if promise.format in ("pdf", "tiff") or promise.print_inches:
        words.append(f"at {promise.dpi} DPI")
    return " ".join(words)


def artwork_size(path: Path, version: Version) -> tuple[int, int] | None:
    """The upright pixel size of a version: the watcher's record, else the file's header (no decode)."""
    if version.width and version.height:
        return version.width, version.height
    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(0x0112, 1) in _QUARTER_TURNS
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return (height, width) if turned else (width, height)


def colour_check(path: Path, mode: str) -> Check | None:
    """Whether the version's embedded profile converts to sRGB (read from the header; nothing decoded)."""
    if mode == "keep":
        return None
    icc, mode = None, "RGB"
    with contextlib.suppress(OSError, SyntaxError, ValueError, Image.DecompressionBombError), Image.open(path) as image:
        icc, mode = image.info.get("icc_profile"), image.mode
    if not icc or mode not in ("RGB", "RGBA"):
        return None  # no profile; or a mode the build converts anyway (and says so in its notes)
    try:
        # Building the transform is what fails for a profile sRGB cannot be reached from (e.g. LAB on RGB
        # pixels); it costs no pixels.
        ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"),
                                mode, mode)
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError):
        return Check("colour", False, "the embedded colour profile cannot be converted to sRGB; colours may be off")
    return Check("colour", True, "colour profile converts to sRGB")


def quantity_check(settings: Settings, job: Job) -> Check | None:
    """Quantity > 1: say what is ordered and how this workflow handles it."""
    if job.quantity <= 1:
        return None
    workflow = workflow_of(settings, job)
    ordered = f"{job.quantity} {workflow.item_noun}s ordered"
    if workflow.quantity == "same":
        return Check("quantity", True, f"{ordered}: the same files cover all of them (workflow setting)")
    return Check("quantity", False, f"{ordered}; a job delivers one set of files: deliver anyway if one covers "
                                    f"them all, or ask the buyer")


def plan_files(settings: Settings, job: Job, version: int, width: int, height: int) -> list[PlannedFile]:
    """Every promise of ``job`` framed on its ``version``, a ``width`` x ``height`` artwork, with the job's saved
    positions."""
    out: list[PlannedFile] = []
    for promise in promises(settings, job):
        key = promise_key(promise)
        margins = True if key in job.margins else None
        frame = plan(width, height, promise, position=saved_position(job, key), margins=margins,
                     max_crop_share=settings.delivery.max_crop_share)
        out.append(PlannedFile(job.job_id, version, key, promise, frame, describe(promise)))
    return out


def plan_job(ws: Workspace, settings: Settings, job: Job) -> JobPlan | None:
    """The plan of ``job``'s approved version, read from its immutable copy; None without one."""
    version = job.version(job.approved_version) if job.approved_version is not None else None
    if version is None or not version.copy:
        return None
    copy_path = ws.tool_path(version.copy)
    result = JobPlan(job.job_id, version.number)
    checks = (quantity_check(settings, job), colour_check(copy_path, settings.delivery.colour))
    result.job_checks = [check for check in checks if check is not None]
    size = artwork_size(copy_path, version)
    if size is not None:
        result.files = plan_files(settings, job, version.number, *size)
    return result
