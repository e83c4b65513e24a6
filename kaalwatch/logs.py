"""Logging set-up: stderr plus a rotating file in the tool area, with secrets and buyer folders scrubbed.

Buyer names and messages are never passed to the logger in the first place (log receipt ids instead).
The filter here is the second line of defence for what can slip into an exception's text: credentials,
and paths inside ``orders/`` — order folders are named after buyers, so a path names one. Each folder
name is replaced by a token (``[folder 1a2b3c4d]``, a digest of the name: stable, so lines about one
folder can still be matched, and meaningless to anyone reading the log).
"""

from __future__ import annotations

import hashlib
import io
import logging
import logging.handlers
import os
import re
from pathlib import Path

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


def folder_token(name: str) -> str:
    return f"[folder {hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}]"


def redact_folders(text: str, orders_dir: Path) -> str:
    """Replace the order folder of every path under ``orders_dir`` in ``text`` with its token.

    A folder name cannot contain a path separator (naming.py), so it ends at the next one; a path that
    ends at the folder itself is matched against the folders that exist (the longest wins), and when
    none does, the rest of the line is taken for the name: better a lost word than a buyer's name.
    """
    prefixes = {str(orders_dir) + os.sep}
    if os.altsep:
        prefixes.add(str(orders_dir) + os.altsep)
    for prefix in prefixes:
        start = text.find(prefix)
        while start >= 0:
            head = start + len(prefix)
            ends = [i for i in (text.find(os.sep, head), text.find(os.altsep, head) if os.altsep else -1) if i >= 0]
            end = min(ends) if ends else _folder_end(text, head, orders_dir)
            token = folder_token(text[head:end])
            text = text[:head] + token + text[end:]
            start = text.find(prefix, head + len(token))
    return text


def _folder_end(text: str, head: int, orders_dir: Path) -> int:
    try:
        names = sorted(os.listdir(orders_dir), key=len, reverse=True)
    except OSError:
        names = []
    rest = text[head:]
    return head + next((len(n) for n in names if rest.startswith(n)), len(rest))


class ScrubFilter(logging.Filter):
    def __init__(self, orders_dir: Path | None = None) -> None:
        super().__init__()
        self.orders_dir = orders_dir

    def clean(self, text: str) -> str:
        text = scrub(text)
        return redact_folders(text, self.orders_dir) if self.orders_dir is not None else text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.clean(logging.Formatter().formatException(record.exc_info))
        return True


class _PrivateRotatingHandler(logging.handlers.RotatingFileHandler):
    """The rotating log, made private (0600) each time a file is opened, the first and every rotated one."""

    def _open(self) -> io.TextIOWrapper:
        stream = super()._open()
        private.restrict(Path(self.baseFilename))
        return stream


def remove_handlers() -> None:
    """Take away and close the handlers :func:`setup` added (known by their scrub filter)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if any(isinstance(f, ScrubFilter) for f in handler.filters):
            root.removeHandler(handler)
            handler.close()


def setup(level: str = "info", log_dir: Path | None = None, *, debug: bool = False,
          orders_dir: Path | None = None) -> None:
    """Configure the root logger once per process (idempotent); ``orders_dir``'s folder names never reach it."""
    remove_handlers()
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else getattr(logging, level.upper(), logging.INFO))
    fmt = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
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
        handler.addFilter(ScrubFilter(orders_dir))
        root.addHandler(handler)
    for noisy in ("urllib3", "watchdog", "PIL", "apscheduler.executors", "waitress.queue"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
