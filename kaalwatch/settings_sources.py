"""Where settings come from, as plain layers (YAML files, environment variables), and their validation.

:mod:`kaalwatch.settings` declares the settings and loads them: each source's data is merged over the
layers below it (:func:`merge`) and validated by pydantic at once (:func:`layer`), so a wrong key or value
is one :class:`~kaalwatch.errors.ConfigError` line naming that source, the key and what is expected, with
a did-you-mean for unknown keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from kaalwatch import validation
from kaalwatch.errors import ConfigError

ENV_PREFIX = "KAALWATCH_"


def _describe(type_: Any, meta: Mapping[str, Any]) -> str:
    """What a setting expects, in words (from its type and its declaration)."""
    if "choices" in meta:
        return "one of " + ", ".join(meta["choices"])
    if meta.get("colour"):
        return "a colour like #ffffff"
    if "pattern" in meta:
        return f"a value like {meta.get('example', '4:5')}"
    if type_ is bool:
        return "true or false"
    if type_ in (int, float):
        kind = "a whole number" if type_ is int else "a number"
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and hi is not None:
            return f"{kind} from {lo} to {hi}"
        if lo is not None:
            return f"{kind} ≥ {lo}"
        return kind
    if type_ is Path:
        return "a folder path"
    if typing.get_origin(type_) is tuple:
        return "a list"
    return "text"


def _declared(root: type, loc: tuple[int | str, ...]) -> tuple[Any, Mapping[str, Any]]:
    """The declared type and field metadata at a pydantic error's location (``root`` at ``()``)."""
    type_: Any = root
    meta: Mapping[str, Any] = {}
    for part in loc:
        if isinstance(part, int):
            type_ = typing.get_args(type_)[0]  # an item of a tuple[X, ...]
            continue
        fields = {f.name: f for f in dataclasses.fields(type_)} if dataclasses.is_dataclass(type_) else {}
        if part not in fields:
            break
        type_, meta = typing.get_type_hints(type_)[part], fields[part].metadata
    return type_, meta


def _message(root: type, error: ErrorDetails) -> str:
    """One of pydantic's errors as our line: ``watcher.backend: expected one of auto, …, got 'magic'``."""
    loc, kind, got = error["loc"], error["type"], error["input"]
    if kind == "unexpected_keyword_argument":
        prefix = validation.key_of(loc[:-1])
        type_, _meta = _declared(root, loc[:-1])
        names = [f.name for f in dataclasses.fields(type_)]
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        tip = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(names)})"
        return f"unknown setting '{prefix + '.' if prefix else ''}{loc[-1]}'{tip}"
    type_, meta = _declared(root, loc)
    if kind in ("dataclass_type", "dataclass_args_type"):
        expected = "expected a mapping of settings"
    elif kind == "tuple_type":
        expected = "expected a list (write [] or - items)" if isinstance(got, str) else "expected a list"
    else:
        expected = validation.value_error(error) or f"expected {_describe(type_, meta)}"
    return f"{validation.key_of(loc) or '(top level)'}: {expected}, got {validation.shown(got)}"


@functools.cache
def _adapter(root: type) -> TypeAdapter[Any]:
    return TypeAdapter(root)  # built once per process: every `kaalwatch` command loads settings


def validated(root: type, plain: Mapping[str, Any], source: str) -> Any:
    """``plain`` data as a ``root`` instance, or a :class:`ConfigError` naming ``source`` and the key."""
    try:
        return _adapter(root).validate_python(plain)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_message(root, validation.first(exc.errors()))}") from None


def merge(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """``layer`` over ``base``: sections merge key by key (an emptied section changes nothing), lists and
    values replace."""
    merged = dict(base)
    for key, value in layer.items():
        if isinstance(merged.get(key), dict) and (value is None or isinstance(value, Mapping)):
            value = merge(merged[key], value or {})
        merged[key] = value
    return merged


def layer(root: type, plain: dict[str, Any], data: Any, source: str) -> dict[str, Any]:
    """``plain`` settings with one source's data over them, validated so an error names that source."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: (top level): expected a mapping of settings, got {validation.shown(data)}")
    merged = merge(plain, data)
    validated(root, merged, source)
    return merged


def _leaf_keys(cls: type, prefix: str = "") -> list[tuple[str, Any]]:
    """Every (dotted key, type) a scalar or list setting has, for environment variables."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        type_: Any = hints[f.name]
        if dataclasses.is_dataclass(type_):
            if f.name == "default_workflow":
                continue  # structured; set it in the file
            out.extend(_leaf_keys(typing.cast(type, type_), f"{prefix}{f.name}."))
        elif typing.get_origin(type_) is tuple and dataclasses.is_dataclass(typing.get_args(type_)[0]):
            continue  # lists of structures (workflows) live in the file only
        else:
            out.append((f"{prefix}{f.name}", type_))
    return out


def env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()


def _env_value(type_: Any, raw: str) -> Any:
    """Environment variables are text: parse them the way YAML would, lists as comma-separated."""
    if typing.get_origin(type_) is tuple:
        return [part.strip() for part in raw.split(",") if part.strip()]
    if type_ is str or type_ is Path:
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def env_layer(root: type, env: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``KAALWATCH_…`` environment variables, nested like the YAML file."""
    return _nest({key: _env_value(type_, env[env_name(key)])
                  for key, type_ in _leaf_keys(root) if env_name(key) in env})


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def default_config_path() -> Path:
    """The platform's per-user config file (``~/.config/kaalwatch/config.yaml`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("kaalwatch", appauthor=False)) / "config.yaml"


def config_file(config_path: Path | None, env: Mapping[str, str], *, use_default_path: bool) -> Path | None:
    """The user's YAML file: ``--config``, else ``KAALWATCH_CONFIG``, else the platform's if it exists."""
    if config_path is not None:
        return config_path
    if env.get("KAALWATCH_CONFIG"):
        return Path(env["KAALWATCH_CONFIG"]).expanduser()
    candidate = default_config_path()
    return candidate if use_default_path and candidate.exists() else None


def read_yaml(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found", hint="run `kaalwatch init` or pass --config") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{label}:{where}: {problem}") from None
    return {} if data is None else data
