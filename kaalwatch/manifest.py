"""``order.yaml`` ⇄ :class:`~kaalwatch.model.Order`: YAML text, schema migrations, validation by pydantic.

Reading is strict about what the tool needs (ids, states, numbers, dates) and tolerant about what a human
may have added: unknown top-level keys are kept in ``Order.extra`` and written back as they were; unknown
keys inside records are dropped. Every failure is one :class:`~kaalwatch.errors.ManifestError` line naming
the file, the key (``jobs[0].state``) and what was expected, and leaves the file as it is.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
from datetime import datetime
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from kaalwatch import migrations, validation, yaml_blocks
from kaalwatch.errors import ManifestError
from kaalwatch.migrations import SCHEMA_VERSION
from kaalwatch.model import Order, iso

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_FIELDS = frozenset(f.name for f in dataclasses.fields(Order)) - {"extra"}


#: Values ``to_plain`` returns as they are (exact types: an enum that is also a str is still an enum).
_SCALARS = frozenset({str, int, float, bool, type(None)})


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")


def to_plain(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:  # most of a manifest: checked first, it halves the time of an order's conversion
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {name: to_plain(getattr(value, name)) for name in _field_names(value.__class__)}
        if isinstance(value, Order):
            out.update(copy.deepcopy(value.extra))  # the data owns its values (ManifestMemory keeps it)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def order_to_dict(order: Order) -> dict[str, Any]:
    plain = to_plain(order)
    del plain["schema"]
    return {"schema": SCHEMA_VERSION, **plain}  # schema first: the first thing a reader checks


@functools.cache
def _order_adapter() -> TypeAdapter[Order]:
    """Built once per process, on the first parse (~50 ms; commands that read no manifest skip it)."""
    return TypeAdapter(Order)


def _message(error: ErrorDetails) -> str:
    """One of pydantic's errors in our words: ``jobs[0].state: 'shipped' is not one of new, …``."""
    loc = error["loc"]
    key = validation.key_of(loc)
    kind = error["type"]
    if kind == "missing":
        return f"{validation.key_of(loc[:-1]) or 'manifest'}: missing '{loc[-1]}'"
    if kind == "enum":
        return f"{key}: {error['input']!r} is not one of {', '.join(validation.choices_of(error))}"
    expected = validation.value_error(error) or "expected " + validation.EXPECTED.get(kind, error["msg"].lower())
    return f"{key or 'manifest'}: {expected}, got {validation.shown(error['input'])}"


def order_from_dict(data: Any, source: str = "order.yaml") -> Order:
    """Build an :class:`Order` from parsed YAML (migrated to :data:`SCHEMA_VERSION` first); raises
    :class:`ManifestError` naming ``source``. ``order.schema`` is the schema the data was written in."""
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: not a manifest (expected a mapping at the top)")
    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise ManifestError(f"{source}: schema: expected a whole number, got {schema!r}")
    if schema > SCHEMA_VERSION:
        raise ManifestError(
            f"{source}: written by a newer kaalwatch (schema {schema}, this one knows {SCHEMA_VERSION})",
            hint="upgrade kaalwatch; the file was left as it is",
        )
    data, from_version = migrations.migrate(data)
    known = {str(k): v for k, v in data.items() if k in _FIELDS}
    known["schema"] = from_version
    known["extra"] = {str(k): v for k, v in data.items() if k not in _FIELDS}
    try:
        return _order_adapter().validate_python(known)
    except ValidationError as exc:
        raise ManifestError(f"{source}: {_message(validation.first(exc.errors()))}") from None


def dump_manifest(order: Order) -> str:
    return dump_data(order_to_dict(order))


def dump_data(data: dict[str, Any]) -> str:
    """The manifest text of ``order_to_dict``'s data. ``order_from_dict`` of the same data is the order a parse
    of this text gives, without the parse (the manifest fuzz test holds the two equal). PyYAML's block
    dump, with the text of versions and history events that did not change reused (``yaml_blocks``)."""
    return yaml_blocks.dump(data)


def parse_manifest(text: str, source: str) -> Order:
    """Parse manifest text; errors name the file and line and leave the file untouched."""
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader (the C one when built)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ManifestError(
            f"{source}:{line}: {problem}", hint="fix or restore the file; it was left as it is"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"{source}: unreadable ({exc.__class__.__name__})") from None
    return order_from_dict(data, source)
