"""Etsy's OAuth 2.0 as the sandbox enforces it: single-use PKCE codes, rotating refresh tokens, expiry, revocation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from kaalwatch.loopback import is_loopback_host

ALL_SCOPES = frozenset({
    "address_r", "address_w", "email_r", "listings_d", "listings_r", "listings_w", "profile_r", "profile_w",
    "shops_r", "shops_w", "transactions_r", "transactions_w",
})
CODE_TTL = 300  # seconds an authorization code lives; Etsy's are short-lived too
REFRESH_TTL = 90 * 86_400  # ≈ 90 days, per Etsy's documentation


class OAuthError(Exception):
    """An OAuth failure with Etsy's body: ``{"error": code, "error_description": text}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        """The JSON body Etsy returns for this error."""
        return {"error": self.error, "error_description": self.description}


@dataclass
class Grant:
    """What a token stands for: a user who consented to some scopes for one app."""

    user_id: int
    client_id: str
    scopes: frozenset[str]


@dataclass
class _Code:
    grant: Grant
    redirect_uri: str
    challenge: str
    expires_at: float


@dataclass
class _Token:
    grant: Grant
    expires_at: float
    family: int
    revoked: bool = False


@dataclass
class TokenStore:
    """All codes and tokens of the sandbox; thread-safe; time comes from ``now``."""

    now: Callable[[], float]
    access_ttl: int = 3600
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _access: dict[str, _Token] = field(default_factory=dict)
    _refresh: dict[str, _Token] = field(default_factory=dict)
    _family: int = 0

    # ----- authorization -------------------------------------------------------------------------------

    def issue_code(self, grant: Grant, redirect_uri: str, code_challenge: str) -> str:
        """Record a consent and return the one-time code for the redirect."""
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = _Code(grant, redirect_uri, code_challenge, self.now() + CODE_TTL)
        return code

    def exchange_code(self, form: Mapping[str, str]) -> dict[str, object]:
        """``grant_type=authorization_code``: client_id, redirect_uri, code, code_verifier all checked."""
        for name in ("client_id", "redirect_uri", "code", "code_verifier"):
            if not form.get(name):
                raise OAuthError(400, "invalid_request", f"{name} is required")
        with self._lock:
            # pop: a code is single-use even when the exchange fails, as OAuth 2.0 requires.
            entry = self._codes.pop(form["code"], None)
            if entry is None:
                raise OAuthError(400, "invalid_grant", "code is invalid or has already been used")
            if entry.expires_at <= self.now():
                raise OAuthError(400, "invalid_grant", "code has expired")
            if form["client_id"] != entry.grant.client_id:
                raise OAuthError(400, "invalid_grant", "client_id does not match the authorization request")
            if form["redirect_uri"] != entry.redirect_uri:
                raise OAuthError(400, "invalid_grant", "redirect_uri does not match the authorization request")
            if not hmac.compare_digest(s256(form["code_verifier"]), entry.challenge):
                raise OAuthError(400, "invalid_grant", "code_verifier is invalid")
            self._family += 1
            return self._mint(entry.grant, self._family)

    def refresh(self, form: Mapping[str, str]) -> dict[str, object]:
        """``grant_type=refresh_token``: the presented token dies, a new pair is returned (rotation)."""
        for name in ("client_id", "refresh_token"):
            if not form.get(name):
                raise OAuthError(400, "invalid_request", f"{name} is required")
        with self._lock:
            entry = self._refresh.pop(form["refresh_token"], None)
            if entry is None or entry.revoked:
                raise OAuthError(400, "invalid_grant", "refresh token is invalid, expired or revoked")
            if entry.expires_at <= self.now():
                raise OAuthError(400, "invalid_grant", "refresh token has expired")
            if form["client_id"] != entry.grant.client_id:
                raise OAuthError(400, "invalid_grant", "client_id does not match the refresh token")
            return self._mint(entry.grant, entry.family)

    def _mint(self, grant: Grant, family: int) -> dict[str, object]:
        access = f"{grant.user_id}.{secrets.token_urlsafe(48)}"
        refresh = f"{grant.user_id}.{secrets.token_urlsafe(48)}"
        now = self.now()
        self._access[access] = _Token(grant, now + self.access_ttl, family)
        self._refresh[refresh] = _Token(grant, now + REFRESH_TTL, family)
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.access_ttl,
                "refresh_token": refresh}

    # ----- checking ------------------------------------------------------------------------------------

    def check(self, token: str) -> Grant:
        """The grant behind a bearer token, or Etsy's 401 ``invalid_token``."""
        with self._lock:
            entry = self._access.get(token)
            if entry is None or entry.revoked:
                raise OAuthError(401, "invalid_token", "access token is not valid")
            if entry.expires_at <= self.now():
                raise OAuthError(401, "invalid_token", "access token is expired")
            return entry.grant

    # ----- admin ---------------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every current access token is now expired (refresh tokens still work)."""
        with self._lock:
            past = self.now() - 1
            for entry in self._access.values():
                entry.expires_at = min(entry.expires_at, past)

    def revoke_all(self) -> None:
        """A password change: every access and refresh token and pending code stops working."""
        with self._lock:
            for entry in (*self._access.values(), *self._refresh.values()):
                entry.revoked = True
            self._codes.clear()


def s256(verifier: str) -> str:
    """PKCE S256: ``BASE64URL(SHA256(verifier))`` without padding (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii", "strict")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_loopback_redirect(uri: str) -> bool:
    """The sandbox registers every loopback callback (http or https) on the app, nothing else."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and is_loopback_host(parts.hostname or "")
            and not parts.fragment and not parts.username and not parts.password)


def parse_scopes(raw: str) -> frozenset[str]:
    """Space-separated scopes; unknown ones are an error, as on Etsy."""
    scopes = frozenset(raw.split())
    unknown = scopes - ALL_SCOPES
    if unknown:
        raise OAuthError(400, "invalid_scope", f"unknown scope(s): {' '.join(sorted(unknown))}")
    if not scopes:
        raise OAuthError(400, "invalid_scope", "scope is required")
    return scopes
