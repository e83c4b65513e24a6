"""The sandbox's log of requests, as tests and the demo read it: what came in, with its secrets redacted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_SECRET_FIELDS = {"code", "code_verifier", "refresh_token", "token", "access_token"}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the sandbox received (admin calls excluded), secrets redacted.

    ``query`` maps each parameter to the list of its values (``parse_qs`` style) so repeated and
    comma-separated array parameters stay distinguishable; ``operation`` is the Etsy operationId the
    sandbox routed it to (``"oauthToken"``, ``"oauthConnect"``, ``"file"``, or ``None`` when nothing
    matched); ``status`` is 0 when the connection was dropped by an injected fault.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int
    time: float
    operation: str | None = None
    form: dict[str, Any] = field(default_factory=dict)


def redacted_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased headers; the shared secret and the bearer token's secret part replaced by ``***``."""
    out = {}
    for k, v in headers:
        lk = k.lower()
        if lk == "x-api-key":
            v = v.split(":", 1)[0] + (":***" if ":" in v else "")
        elif lk == "authorization":
            v = v.split(".", 1)[0] + ".***" if "." in v else "***"
        out[lk] = v
    return out


def redacted_form(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in _SECRET_FIELDS else v) for k, v in fields.items()}
