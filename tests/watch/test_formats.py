"""Each artwork format becomes a version with a preview through the running watcher."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kaalwatch.store import Workspace
from kaalwatch.watch import WatchService
from tests.support.polling import wait_for
from tests.watch import helpers
from tests.watch.helpers import encode, picture

FORMATS: dict[str, Callable[[], bytes]] = {
    "portrait.png": lambda: helpers.png(1),
    "portrait.jpg": lambda: encode(picture(2), "JPEG"),
    "portrait.tiff": lambda: encode(picture(3), "TIFF"),
    "portrait.webp": lambda: encode(picture(4), "WEBP"),
    "portrait.bmp": lambda: encode(picture(5), "BMP"),
    "portrait.psd": lambda: helpers.psd(6),
    "portrait.kra": lambda: helpers.kra(7),
    "portrait.ora": lambda: helpers.ora(8),
    "portrait.procreate": lambda: helpers.procreate(9),
}


@pytest.mark.parametrize("name", list(FORMATS))
def test_format_becomes_a_previewed_version(name: str, ws: Workspace, order_at: Callable,
                                            start_service: Callable[..., WatchService]) -> None:
    order, folder = order_at()
    service = start_service()
    wait_for(lambda: service.health()["alive"])
    (folder / name).write_bytes(FORMATS[name]())
    wait_for(lambda: ws.load(order.receipt_id).jobs[0].versions
             and ws.load(order.receipt_id).jobs[0].versions[0].preview)
    (v,) = ws.load(order.receipt_id).jobs[0].versions
    assert ws.tool_path(v.preview).is_file() and ws.tool_path(v.thumb).is_file()
    assert v.width and v.height and v.error is None
    assert v.low_res is (name.endswith(".procreate"))


@pytest.mark.slow
def test_real_process_pool(ws: Workspace, settings, order_at: Callable) -> None:
    """The service with its own PreviewPool (spawned worker processes), as the daemon runs it."""
    order, folder = order_at()
    service = WatchService(ws, settings)
    service.start()
    try:
        (folder / "portrait.png").write_bytes(helpers.png(10))
        wait_for(lambda: ws.load(order.receipt_id).jobs[0].versions
                 and ws.load(order.receipt_id).jobs[0].versions[0].preview, timeout=60)
    finally:
        service.stop(timeout=30)
