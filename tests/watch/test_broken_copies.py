"""A version that later proves broken (its copy fails its format's completeness rule) is marked on the page."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch import rescan_order
from tests.watch.test_real_saves import clip_file


def test_a_version_whose_copy_turns_out_cut_off_is_marked_broken(
        ws: Workspace, settings: Settings, order_at: Callable[..., tuple[Order, Path]]) -> None:
    s = dataclasses.replace(settings, watcher=dataclasses.replace(settings.watcher, closed_quiet_seconds=0.0))
    order, folder = order_at()
    (folder / "portrait.clip").write_bytes(clip_file(b"layers" * 500))
    report = rescan_order(ws, s, order.receipt_id, max_wait=10)
    (v,) = ws.load(order.receipt_id).jobs[0].versions
    assert v.error is None and report.broken == 0
    copy = ws.tool_path(v.copy)
    os.chmod(copy, 0o644)
    copy.write_bytes(copy.read_bytes()[:1000])  # the disk (or a hand) damaged the immutable copy
    report = rescan_order(ws, s, order.receipt_id, max_wait=10)
    (v,) = ws.load(order.receipt_id).jobs[0].versions
    assert report.broken == 1 and v.error and v.error.startswith("the saved file is broken")
    assert rescan_order(ws, s, order.receipt_id, max_wait=10).broken == 0  # marked once
