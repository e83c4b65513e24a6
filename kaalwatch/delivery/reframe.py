"""The owner's choice of where a deliverable's crop frame sits on the artwork (dragged on the review page)."""

from __future__ import annotations

from kaalwatch import lifecycle
from kaalwatch.deliver_folder import built
from kaalwatch.store import Workspace


def set_framing(ws: Workspace, receipt_id: int, job_id: str, key: str, position: float | None, margins: bool,
                *, actor: str = "review") -> list[str]:
    """Save where deliverable ``key``'s frame sits on ``job_id``'s artwork (None = centred), or margins instead
    of a crop. Files built with the old frame leave deliver/ (returned): the next build uses the new one."""
    with ws.edit(int(receipt_id)) as order:
        before = built(order)
        lifecycle.set_framing(order, job_id, key, position, margins, actor)
    return sorted(before - built(order))
