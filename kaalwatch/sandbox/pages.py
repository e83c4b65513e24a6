"""What the sandbox shows a browser: Etsy's OAuth connect and consent pages, the stand-in for Etsy's
"complete order" page, and the files behind listing images and buyer uploads.

Each function answers with a :class:`Page` the HTTP handler sends as it is; none writes to a socket.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from kaalwatch.sandbox import images
from kaalwatch.sandbox.oauth import Grant, OAuthError, is_loopback_redirect, parse_scopes
from kaalwatch.sandbox.seed import IMAGE_SIZES

if TYPE_CHECKING:
    from kaalwatch.sandbox.app import Sandbox

CONNECT_PATH = "/oauth/connect"
# Etsy's own order page, where a seller uploads a made-to-order order's files and completes it. The
# API cannot do that step, so the demo needs a stand-in to finish the flow.
ORDER_PAGE_PATH = "/your/orders/sold"


@dataclass(frozen=True)
class Page:
    """One answer for the handler to send as it is."""

    status: int
    body: bytes
    content_type: str | None  # None: no body and no Content-Type (a redirect)
    headers: dict[str, str] = field(default_factory=dict)


def html_page(status: int, title: str, body: str) -> Page:
    doc = (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
           f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")
    return Page(status, doc.encode("utf-8"), "text/html; charset=utf-8",
                {"Content-Security-Policy": "default-src 'none'; form-action 'self'",
                 "X-Frame-Options": "DENY", "Cache-Control": "no-store"})


def redirect(uri: str, params: dict[str, str]) -> Page:
    sep = "&" if urlsplit(uri).query else "?"
    return Page(302, b"", None, {"Location": uri + sep + urlencode(params)})


def connect(sb: Sandbox, method: str, params: dict[str, str]) -> Page:
    """Etsy's ``/oauth/connect``: GET shows the consent page (or approves at once), POST is the choice."""
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    # Until client_id and redirect_uri are known good, never redirect anywhere: show an error page.
    if client_id != sb.keystring:
        return html_page(400, "Unknown application", "<p>The client_id is not a registered app.</p>")
    if not is_loopback_redirect(redirect_uri):
        return html_page(400, "Invalid redirect_uri", "<p>The redirect_uri is not registered for this application.</p>")
    state = params.get("state", "")
    try:
        if params.get("response_type") != "code":
            raise OAuthError(400, "unsupported_response_type", "response_type must be code")
        if params.get("code_challenge_method") != "S256":
            raise OAuthError(400, "invalid_request", "code_challenge_method must be S256")
        challenge = params.get("code_challenge", "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge):
            raise OAuthError(400, "invalid_request", "code_challenge must be a base64url S256 digest")
        if not state:
            raise OAuthError(400, "invalid_request", "state is required")
        scopes = parse_scopes(params.get("scope", ""))
    except OAuthError as err:
        return redirect(redirect_uri, {"error": err.error, "error_description": err.description, "state": state})
    if method == "GET" and not sb.auto_approve:
        return _consent(sb, params, scopes)
    if method == "POST" and params.get("decision") != "allow":
        return redirect(redirect_uri, {"error": "access_denied", "error_description": "The user denied access",
                                       "state": state})
    code = sb.tokens.issue_code(Grant(sb.shop.user_id, client_id, scopes), redirect_uri, challenge)
    return redirect(redirect_uri, {"code": code, "state": state})


def _consent(sb: Sandbox, params: dict[str, str], scopes: frozenset[str]) -> Page:
    e = html.escape
    keep = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
            "code_challenge_method")
    hidden = "".join(f'<input type="hidden" name="{e(k)}" value="{e(params.get(k, ""))}">' for k in keep)
    items = "".join(f"<li>{e(s)}</li>" for s in sorted(scopes))
    body = (
        f"<p>The app <b>{e(params['client_id'])}</b> wants access to the shop "
        f"<b>{e(sb.shop.shop['shop_name'])}</b>:</p><ul>{items}</ul>"
        f"<p>After you choose you will be sent to <code>{e(params['redirect_uri'])}</code>.</p>"
        f'<form method="post" action="{CONNECT_PATH}">{hidden}'
        '<button type="submit" name="decision" value="allow" id="allow">Allow access</button> '
        '<button type="submit" name="decision" value="deny" id="deny">Deny</button></form>'
    )
    return html_page(200, "Grant access (kaalwatch Etsy sandbox)", body)


def order_page(sb: Sandbox, method: str, params: dict[str, str]) -> Page:
    """A minimal stand-in for Etsy's "complete order and upload files" page (no files are kept)."""
    raw = params.get("order_id", "")
    if not raw.isdigit() or int(raw) not in sb.receipt_ids:
        return html_page(404, "Order not found", "<p>No such order in this sandbox shop.</p>")
    receipt_id = int(raw)
    if method == "POST":
        sb.complete(receipt_id)
    receipt = sb.receipt(receipt_id)
    status = html.escape(str(receipt.get("status")))
    body = (f"<p>Order <b>{receipt_id}</b> is <b>{status}</b>.</p>"
            "<p>On Etsy you would upload the files here (at most 5, 20 MB each) and complete the order. "
            "The sandbox keeps no files; completing marks the receipt Completed, and kaalwatch sees it on "
            "its next sync.</p>")
    if not receipt.get("is_shipped"):
        body += (f'<form method="post" action="{ORDER_PAGE_PATH}">'
                 f'<input type="hidden" name="order_id" value="{receipt_id}">'
                 '<button type="submit" id="complete">Complete order</button></form>')
    return html_page(200, f"Complete order {receipt_id} (kaalwatch Etsy sandbox)", body)


def served_file(sb: Sandbox, rel: str) -> Page | None:
    """A listing image (drawn on request) or a file the shop holds; None when there is no such file."""
    m = re.fullmatch(r"il/(\d+)/(\w+)\.jpg", rel)
    if m:
        image_id, size = int(m[1]), m[2]
        known = any(img["listing_image_id"] == image_id for imgs in sb.shop.images.values() for img in imgs)
        if not known or size not in IMAGE_SIZES:
            return None
        w, h = IMAGE_SIZES[size]
        return Page(200, images.render(f"il-{image_id}", w, h), "image/jpeg",
                    {"Cache-Control": "public, max-age=86400"})
    entry = sb.shop.files.get(rel)
    if entry is None:
        return None
    ctype, data = entry
    return Page(200, data if isinstance(data, bytes) else data(), ctype)
