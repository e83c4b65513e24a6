"""Deliverables from the approved version, within Etsy's limits and the listing's promise, and knowing for
certain they went out.

Etsy's API cannot attach a file to an order: the artist uploads the files on Etsy's order page. This package
makes that one careful minute; each module does one job:

* :mod:`~kaalwatch.delivery.framing` — where a promise's aspect sits on the artwork (pure geometry, checks);
* :mod:`~kaalwatch.delivery.promises` — a job's promises laid on its approved version, before building;
* :mod:`~kaalwatch.delivery.build` — pixels to bytes within Etsy's per-file limit;
* :mod:`~kaalwatch.delivery.names` — file names from a template; :mod:`~kaalwatch.delivery.limits` — Etsy's limits;
* :mod:`~kaalwatch.delivery.preparing` — :func:`prepare` builds into ``deliver/`` and marks jobs ready;
* :mod:`~kaalwatch.delivery.reframe` — the owner moves a crop frame;
* :mod:`~kaalwatch.delivery.folder` — the ``deliver/`` folder (kept to ready jobs' files by ``Workspace.edit``);
* :mod:`~kaalwatch.delivery.after_upload` — "I have uploaded these", and marking the order shipped;
* :mod:`~kaalwatch.delivery.overview` — what the review page and ``kaalwatch deliver`` show.

Logs name receipt and job ids only.
"""

from kaalwatch.delivery.after_upload import SHIPMENT_ATTEMPTS, confirm_uploaded, etsy_order_url, ship_confirmed_orders
from kaalwatch.delivery.folder import deliver_dir
from kaalwatch.delivery.overview import Panel, panel
from kaalwatch.delivery.preparing import DeliveryReport, prepare
from kaalwatch.delivery.reframe import set_framing

__all__ = [
    "SHIPMENT_ATTEMPTS",
    "DeliveryReport",
    "Panel",
    "confirm_uploaded",
    "deliver_dir",
    "etsy_order_url",
    "panel",
    "prepare",
    "set_framing",
    "ship_confirmed_orders",
]
