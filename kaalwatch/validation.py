"""pydantic's validation errors as our one-line messages: the key path, what was expected, what was found.

Settings (:mod:`kaalwatch.settings`) and manifests (:mod:`kaalwatch.manifest`) are both validated by
pydantic ``TypeAdapter``\\ s over plain dataclasses; this module turns the first of pydantic's errors into
``jobs[0].state`` style keys and our wording ("expected a whole number, got 'x'").
"""

from __future__ import annotations

import re
from typing import Any

from pydantic_core import ErrorDetails

#: What each pydantic error type means, in the words our messages use.
EXPECTED = {
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "dataclass_type": "a mapping",
    "dataclass_args_type": "a mapping",
    "datetime_type": "an ISO date-time",
}


def key_of(loc: tuple[int | str, ...]) -> str:
    """``("jobs", 0, "state")`` → ``jobs[0].state``."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def shown(value: Any) -> str:
    """A value as the message shows it: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def first(errors: list[ErrorDetails]) -> ErrorDetails:
    """The error to report: an unknown key before a wrong value (the likelier cause), else the first."""
    return next((e for e in errors if e["type"] == "unexpected_keyword_argument"), errors[0])


def choices_of(error: ErrorDetails) -> list[str]:
    """The allowed values of an ``enum`` or ``literal_error`` (pydantic quotes them in ``ctx.expected``)."""
    return re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))


def value_error(error: ErrorDetails) -> str | None:
    """The text of a ``ValueError`` one of our own validators raised (it says what was expected)."""
    if error["type"] != "value_error":
        return None
    return str((error.get("ctx") or {}).get("error", ""))
