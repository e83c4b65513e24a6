"""Delivery fixtures: real orders with real image versions (noise, so encoders cannot shrink them to nothing)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kaalwatch import lifecycle
from kaalwatch.model import Answer, Order, Version, utcnow
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

BUYER = "Zenobia Quartermaine"
SECRET_ANSWER = "Mr Wigglesworth the third"


def noise(width: int, height: int, *, sigma: float = 40, alpha: bool = False) -> Image.Image:
    """Gaussian noise per channel: realistic for encoders (a flat colour would compress to nothing)."""
    bands = [Image.effect_noise((width, height), sigma) for _ in range(3)]
    image = Image.merge("RGB", bands)
    if alpha:
        mask = Image.new("L", (width, height), 255)
        mask.paste(0, (0, 0, width // 4, height // 4))
        image.putalpha(mask)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def with_workflow(settings: Settings, *promises: Promise, **delivery: Any) -> Settings:
    """Settings whose default workflow promises exactly ``promises`` (and delivery limits overridden)."""
    default = dataclasses.replace(settings.default_workflow, deliverables=tuple(promises))
    return dataclasses.replace(settings, default_workflow=default, workflows=(),
                               delivery=dataclasses.replace(settings.delivery, **delivery))


def add_version(ws: Workspace, receipt_id: int, job_id: str, data: bytes, *, suffix: str = ".png",
                source_name: str = "portrait.png") -> int:
    """Save ``data`` as the job's next version the way the watcher does: an immutable copy plus a record."""
    sha = hashlib.sha256(data).hexdigest()
    order = ws.load(receipt_id)
    number = len(order.job(job_id).versions) + 1
    path = ws.version_copy_path(receipt_id, job_id, number, sha, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    with ws.edit(receipt_id) as order:
        lifecycle.add_version(order, job_id, Version(number=number, source_name=source_name, sha256=sha,
                                                     size=len(data), saved_at=utcnow(),
                                                     copy=ws.relative_to_tool(path)))
    return number


def approve(ws: Workspace, receipt_id: int, job_id: str, number: int) -> None:
    with ws.edit(receipt_id) as order:
        lifecycle.approve(order, job_id, number)


@pytest.fixture
def order_with_art(ws: Workspace, make_order: Callable[..., Order]) -> Callable[..., Order]:
    """``order_with_art(image, jobs=1)``: an order in the workspace whose every job has ``image`` approved."""

    def factory(image: Image.Image, *, jobs: int = 1, fmt: str = "PNG", suffix: str = ".png",
                approved: bool = True, **save: Any) -> Order:
        order = make_order(jobs=jobs, buyer=BUYER, answers=[Answer(question="Pet's name", answer=SECRET_ANSWER)])
        ws.add_order(order)
        for job in order.jobs:
            number = add_version(ws, order.receipt_id, job.job_id, encode(image, fmt, **save), suffix=suffix)
            if approved:
                approve(ws, order.receipt_id, job.job_id, number)
        return ws.load(order.receipt_id)

    return factory


def deliver_files(ws: Workspace, receipt_id: int) -> list[Path]:
    folder = ws.folder_of(receipt_id) / "deliver"
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
