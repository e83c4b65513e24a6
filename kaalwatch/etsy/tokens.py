"""The shop's OAuth tokens on disk: one 0600 JSON file in the workspace's secrets folder, written atomically.

Refreshing is done under a cross-process file lock (:meth:`TokenStore.lock`): Etsy rotates the refresh
token on every refresh, so two processes refreshing at once would lock the shop out.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from filelock import FileLock

from kaalwatch import private
from kaalwatch.errors import AuthError, EtsyError
from kaalwatch.store import Workspace

REFRESH_LIFETIME_SECONDS = 90 * 86_400  # Etsy's documented refresh-token lifetime
REFRESH_WARN_AGE_SECONDS = 75 * 86_400  # warn two weeks before the refresh token dies
LOCK_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Tokens:
    """One token pair and what we learnt about the shop when connecting."""

    access_token: str
    refresh_token: str
    expires_at: float  # epoch seconds
    refresh_issued_at: float  # epoch seconds; the refresh token dies ~90 days later
    user_id: int | None = None
    shop_id: int | None = None
    shop_name: str = ""
    scopes: tuple[str, ...] = field(default_factory=tuple)
    connected_at: float = 0.0
    base_url: str = ""  # the Etsy these tokens belong to (sandbox tokens never go to the real Etsy)

    def expires_within(self, seconds: float, now: float) -> bool:
        return self.expires_at - now <= seconds

    def rotated(self, body: dict[str, Any], now: float) -> Tokens:
        """The pair Etsy returned from a refresh (both tokens are new)."""
        access, refresh, expires_in = _token_fields(body)
        return replace(self, access_token=access, refresh_token=refresh, expires_at=now + expires_in,
                       refresh_issued_at=now)

    def __repr__(self) -> str:  # never print a token, even in a traceback or --debug dump
        return f"Tokens(user_id={self.user_id}, shop_id={self.shop_id}, expires_at={self.expires_at:.0f})"


def _token_fields(body: dict[str, Any]) -> tuple[str, str, float]:
    access, refresh = body.get("access_token"), body.get("refresh_token")
    if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
        raise EtsyError("Etsy's token answer had no token pair; try `kaalwatch auth` again")
    try:
        expires_in = float(body.get("expires_in") or 3600)
    except (TypeError, ValueError):
        expires_in = 3600.0
    return access, refresh, expires_in


def tokens_from_answer(body: dict[str, Any], now: float, *, base_url: str) -> Tokens:
    """Tokens from the answer to the code exchange (user_id is the number before the dot)."""
    access, refresh, expires_in = _token_fields(body)
    head = access.split(".", 1)[0]
    return Tokens(access_token=access, refresh_token=refresh, expires_at=now + expires_in, refresh_issued_at=now,
                  user_id=int(head) if head.isdigit() else None, connected_at=now, base_url=base_url)


class TokenStore:
    """``etsy_tokens.json`` in the secrets folder (0600). ``load()`` → :class:`Tokens` or None; ``save(tokens)``."""

    def __init__(self, ws: Workspace) -> None:
        self._secrets = ws.secrets
        self.path: Path = ws.secrets.tokens_path
        self._lock_path = ws.locks_dir / "etsy_tokens.lock"

    def lock(self) -> FileLock:
        """Held while refreshing: one process at a time, across threads and processes."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self._lock_path), timeout=LOCK_TIMEOUT_SECONDS, mode=private.file_mode())

    def load(self) -> Tokens | None:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuthError(f"cannot read {self.path}: {exc.strerror}", hint="fix its permissions") from None
        try:
            data = json.loads(raw)
            data["scopes"] = tuple(data.get("scopes") or ())
            known = set(Tokens.__dataclass_fields__)
            return Tokens(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError, KeyError):
            raise AuthError(f"{self.path} is unreadable", hint="run `kaalwatch auth` to connect again") from None

    def save(self, tokens: Tokens) -> None:
        """Atomic replace with mode 0600; the folder is 0700."""
        self._secrets.write_text(self.path, json.dumps(asdict(tokens), indent=2, sort_keys=True))  # scopes: a list


def describe(tokens: Tokens, now: float | None = None, *, refused: str | None = None) -> list[str]:
    """Lines for ``kaalwatch auth status``: shop, scopes, expiry, refresh-token age (no secret).

    ``refused`` is why Etsy no longer accepts these tokens (a revoked grant, seen just now or recorded by
    the last sync): then no line claims a token is still good, and the fix is said.
    """
    now = time.time() if now is None else now
    age_days = (now - tokens.refresh_issued_at) / 86_400
    left = tokens.expires_at - now
    lines = [
        f"shop: {tokens.shop_name or '?'} (shop_id {tokens.shop_id}, user_id {tokens.user_id})",
        f"Etsy: {tokens.base_url or '?'}",
        f"scopes: {' '.join(tokens.scopes) or '(unknown)'}",
    ]
    if refused is not None:
        return [*lines,
                f"access token: no longer accepted: {refused}",
                "refresh token: revoked by Etsy (a password change or a removed app access does this): "
                "run `kaalwatch auth` to connect the shop again"]
    lines += [
        "access token: " + (f"valid for {int(left // 60)} more minutes" if left > 0
                            else "expired (refreshed on next use)"),
        f"refresh token: {age_days:.1f} days old (Etsy's last about 90 days; every refresh renews it)",
    ]
    if now - tokens.refresh_issued_at >= REFRESH_WARN_AGE_SECONDS:
        days_left = max(0, (tokens.refresh_issued_at + REFRESH_LIFETIME_SECONDS - now) / 86_400)
        lines.append(f"WARNING: the refresh token expires in about {days_left:.0f} days: run `kaalwatch sync` "
                     "(which refreshes it) or `kaalwatch auth`")
    return lines
