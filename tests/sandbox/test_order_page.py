"""The stand-in for Etsy's order page: the demo's last step, completing an order as the seller would."""

from __future__ import annotations

import requests

from kaalwatch.sandbox import Clock, Sandbox


def test_order_page_completes_the_receipt_and_escapes_nothing_unsafe() -> None:
    with Sandbox(seed=3, clock=Clock(frozen=True)) as sb:
        receipt = sb.add_order()
        rid = receipt["receipt_id"]
        page = requests.get(f"{sb.url}/your/orders/sold", params={"order_id": rid}, timeout=10)
        assert page.status_code == 200 and 'id="complete"' in page.text
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        done = requests.post(f"{sb.url}/your/orders/sold", data={"order_id": rid}, timeout=10)
        assert done.status_code == 200 and 'id="complete"' not in done.text
        assert sb.receipt(rid)["status"].lower() == "completed" and sb.receipt(rid)["is_shipped"] is True
        for bad in ("999", "<script>", ""):
            missing = requests.get(f"{sb.url}/your/orders/sold", params={"order_id": bad}, timeout=10)
            assert missing.status_code == 404 and "<script>" not in missing.text
