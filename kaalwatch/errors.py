"""The exceptions kaalwatch raises on purpose: each carries a one-line message a user can act on.

The CLI's ``main()`` turns any of these into that line and the exit code below; anything else is a bug
and shows a traceback only with ``--debug``.
"""

from __future__ import annotations


class KaalwatchError(Exception):
    """Base of every expected failure. ``str(err)`` is the one line shown to the user."""

    exit_code = 1

    def __init_subclass__(cls, *, exit_code: int | None = None) -> None:
        super().__init_subclass__()
        if exit_code is not None:
            cls.exit_code = exit_code

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(KaalwatchError, exit_code=2):
    """A setting is missing, misspelt, of the wrong type or impossible."""


class WorkspaceError(KaalwatchError, exit_code=3):
    """The workspace cannot be used: missing, read-only, full, or locked by another process."""


class ManifestError(KaalwatchError, exit_code=4):
    """An ``order.yaml`` does not parse or does not follow the schema; the file is left untouched."""


class TransitionError(KaalwatchError, exit_code=5):
    """A job was asked to move to a state it cannot reach from where it is."""


class NotFoundError(KaalwatchError, exit_code=6):
    """An order, job or version that was named does not exist."""


class ImageError(KaalwatchError, exit_code=7):
    """A file could not be decoded into pixels (truncated, corrupt, a bomb, or an unknown format)."""


class EtsyError(KaalwatchError, exit_code=8):
    """Etsy answered with an error, or could not be reached within the retry bound."""


class AuthError(EtsyError, exit_code=9):
    """The shop is not connected, or Etsy revoked the connection: run ``kaalwatch auth``."""


class GrantRevokedError(AuthError):
    """Etsy no longer accepts the shop's grant (``invalid_grant``, or a 401 after a refresh): a password
    change, removed app access, or — during ``kaalwatch auth`` — a sign-in code that expired or was used."""


class EtsyForbiddenError(EtsyError):
    """Etsy refused a call: a scope the token lacks, or a wrong keystring / shared secret."""


class EtsyNotFoundError(EtsyError):
    """Etsy does not know the shop, receipt or listing that was asked for."""


class EtsyRateLimitError(EtsyError):
    """Etsy's daily request budget is used up; ``retry_at`` (epoch seconds) says when to try again."""

    def __init__(self, message: str, *, hint: str | None = None, retry_at: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_at = retry_at


class DownloadError(KaalwatchError, exit_code=11):
    """A buyer upload or listing image was refused (unsafe address, too big, not an image) or failed."""


class DeliveryError(KaalwatchError, exit_code=10):
    """A deliverable cannot be built within what the listing promises and Etsy accepts."""
