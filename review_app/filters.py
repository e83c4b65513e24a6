"""Jinja filters that turn stored values (datetimes, epoch seconds, byte counts) into short readable text."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from markupsafe import Markup

from kaalwatch.overview import days_left, to_datetime


def when(value: Any) -> str:
    moment = to_datetime(value)
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(value: Any, now: datetime | None = None) -> str:
    moment = to_datetime(value)
    if moment is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def filesize(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def label(value: Any) -> str:
    return str(getattr(value, "value", value)).replace("_", " ")


def _visible(ch: str) -> str:
    if ch in "\n\r\t" or unicodedata.category(ch) not in ("Cc", "Cf"):
        return ch
    return f"[U+{ord(ch):04X}]"


def visible_controls(value: Any) -> Any:
    """Jinja's ``finalize``: control and format characters in any printed value become visible ``[U+202E]``.

    Autoescaping stops markup, not these: a right-to-left override can make ``gpj.exe`` read as ``exe.jpg``,
    and NUL or ESC in buyer text has no business in the page. Our own markup (``Markup``) passes untouched.
    """
    if value is None or isinstance(value, Markup | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join(_visible(ch) for ch in text)


def init_app(app: Flask) -> None:
    app.jinja_env.finalize = visible_controls
    app.jinja_env.filters.update(when=when, ago=ago, filesize=filesize, label=label)
    app.jinja_env.globals["days_left"] = days_left
