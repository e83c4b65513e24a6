"""Logging set-up: stderr plus a rotating file in the tool area, with secrets scrubbed from every line.

Buyer names and messages are never passed to the logger in the first place (log receipt ids instead);
the filter here is the second line of defence for credentials that could slip into an exception text.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
from pathlib import Path
from typing import TextIO

from kaalwatch import private

_SECRET_PATTERNS = [
    re.compile(r"(?i)(x-api-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?bearer\s+)[^\s'\",}]+"),
    re.compile(r"(?i)((?:access|refresh)_token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+"),
    re.compile(r"(?i)((?:code_verifier|code|client_secret|shared_secret|password)=)[^\s&'\"]+"),
]


def scrub(text: str) -> str:
    """Replace credentials in ``text`` with ``***``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """The rotating log, made private (0600) each time a file is opened, the first and every rotated one."""

    def _open(self) -> TextIO:
        stream = super()._open()
        private.restrict(Path(self.baseFilename))
        return stream


def setup(level: str = "info", log_dir: Path | None = None, *, debug: bool = False) -> None:
    """Configure the root logger once per process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_kaalwatch", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.DEBUG if debug else getattr(logging, level.upper(), logging.INFO))
    fmt = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    stderr = logging.StreamHandler()
    stderr.setFormatter(fmt)
    handlers: list[logging.Handler] = [stderr]
    if log_dir is not None:
        try:
            private.make_dir(log_dir)
            handlers.append(
                _PrivateRotatingHandler(log_dir / "kaalwatch.log", maxBytes=5_000_000, backupCount=5, encoding="utf-8")
            )
        except OSError:
            pass  # a read-only workspace is reported by the command itself; logging to stderr still works
    for handler in handlers:
        handler.setFormatter(fmt)
        handler.addFilter(ScrubFilter())
        handler._kaalwatch = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for noisy in ("urllib3", "watchdog", "PIL", "apscheduler.executors", "waitress.queue"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
