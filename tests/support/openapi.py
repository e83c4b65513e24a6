"""Etsy's OpenAPI document as a test oracle: validate response bodies and match requests to operations.

The document is Etsy's public one, kept in the repository at ``tests/data/etsy/openapi-v3.json`` (see the
README beside it), so every clone has it: contract tests never skip. :func:`require_doc` fails the calling
test, naming the path, if someone deleted it.

Two entry points:

``validate_response(operation_id, status, body, strict=False)``
    Validates ``body`` against the response schema the document declares for that operation and status
    (OAS 3.0 ``nullable`` honoured). ``strict=True`` also demands every documented property be present
    (except the associations listed in :data:`OPTIONAL_WHEN_STRICT`), which is what Etsy really sends.
    Raises :class:`ResponseMismatch` (an ``AssertionError``) naming the JSON path that failed.

``match_request(method, path, query_params=None, *, form=None, content_type=None) -> operation_id``
    ``path`` may be a full URL (the host is ignored). ``query_params`` maps names to a value or a list of
    values (``parse_qs`` output and ``RecordedRequest.query`` both work). Raises :class:`RequestMismatch`
    when no operation has that path and method, when a query parameter is undocumented, required but
    missing, or has a value its schema rejects (integers, bounds, booleans ``true``/``false``, enums,
    arrays given comma-separated or repeated), when a path parameter is invalid, or when ``form`` has
    fields the request body schema does not declare or ``content_type`` is not one the body accepts.
    The OAuth token endpoint, which the document names only as ``tokenUrl``, matches as ``"oauthToken"``.

Every deliberate difference between the document and real Etsy traffic lives in
:data:`REAL_TRAFFIC_EXCEPTIONS`, and nowhere else.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from jsonschema.exceptions import best_match

REPO = Path(__file__).resolve().parents[2]
DOC_PATH = REPO / "tests" / "data" / "etsy" / "openapi-v3.json"

# (schema, property) -> why the document is relaxed there. Applied by _patched_components() only.
REAL_TRAFFIC_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("ShopReceipt", "status"): "enum compared case-insensitively: real traffic is title-case ('Paid', "
                               "'Fully Refunded') while the document lists lower-case values (NOTES.md)",
}

# Associations only present when asked for with ``includes``: never demanded by strict validation.
OPTIONAL_WHEN_STRICT: dict[str, set[str]] = {
    "ShopListingWithAssociations": {"shipping_profile", "user", "shop", "images", "videos", "inventory",
                                    "translations", "personalization", "buyer_price"},
}

# Operations the document implies but does not list as paths: the OAuth token endpoint (tokenUrl).
EXTRA_OPERATIONS: dict[tuple[str, str], str] = {("POST", "/v3/public/oauth/token"): "oauthToken"}
_TOKEN_FORM = {"grant_type", "client_id", "redirect_uri", "code", "code_verifier", "refresh_token"}


class RequestMismatch(AssertionError):
    """A request that does not match any operation of the document, or misuses one."""


class ResponseMismatch(AssertionError):
    """A response body the document's schema rejects."""


@functools.cache
def load_doc() -> dict[str, Any]:
    """The parsed document (cached)."""
    return json.loads(DOC_PATH.read_text(encoding="utf-8"))


def require_doc() -> dict[str, Any]:
    """The document; a missing one fails the calling test (it ships with the repository, never skip)."""
    if not DOC_PATH.is_file():
        import pytest

        pytest.fail(f"Etsy's OpenAPI document is missing from the repository: {DOC_PATH} (restore it with git)")
    return load_doc()


# ----- schema conversion ------------------------------------------------------------------------------

def _oas30_to_jsonschema(node: Any) -> Any:
    """OAS 3.0 schema -> JSON Schema: ``nullable: true`` becomes an explicit ``null`` alternative."""
    if isinstance(node, list):
        return [_oas30_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _oas30_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if "type" in out and "$ref" not in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _patched_components(strict: bool) -> dict[str, Any]:
    components = copy.deepcopy(load_doc()["components"])
    schemas = components["schemas"]
    for (schema, prop), _why in REAL_TRAFFIC_EXCEPTIONS.items():
        spec = schemas[schema]["properties"][prop]
        if "enum" in spec:
            alternatives = "|".join(re.escape(v) for v in spec.pop("enum"))
            spec["pattern"] = f"(?i)^(?:{alternatives})$"
    if strict:
        for name, schema in schemas.items():
            props = schema.get("properties")
            if isinstance(props, dict) and props:
                schema["required"] = sorted(set(props) - OPTIONAL_WHEN_STRICT.get(name, set()))
    return _oas30_to_jsonschema(components)


@functools.cache
def _operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    ops = {}
    for path, item in load_doc()["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                ops[op["operationId"]] = (method.upper(), path, op)
    return ops


def response_schema(operation_id: str, status: int) -> dict[str, Any]:
    """The (unconverted) schema the document declares for that response."""
    try:
        _method, _path, op = _operations()[operation_id]
    except KeyError:
        raise ResponseMismatch(f"operation {operation_id!r} is not in the document") from None
    responses = op["responses"]
    resp = responses.get(str(status)) or responses.get("default")
    if resp is None:
        raise ResponseMismatch(f"{operation_id} documents no {status} response (has {sorted(responses)})")
    content = resp.get("content", {}).get("application/json")
    if content is None:
        raise ResponseMismatch(f"{operation_id} {status} has no application/json body in the document")
    return content["schema"]


@functools.cache
def _validator(operation_id: str, status: int, strict: bool) -> jsonschema.Draft7Validator:
    schema = _oas30_to_jsonschema(response_schema(operation_id, status))
    return jsonschema.Draft7Validator({**schema, "components": _patched_components(strict)})


def validate_response(operation_id: str, status: int, body: Any, *, strict: bool = False) -> None:
    """Raise :class:`ResponseMismatch` unless ``body`` fits the documented schema (see module doc)."""
    validator = _validator(operation_id, status, strict)
    # oneOf wrappers hide the real cause one level down: report the most relevant leaf of each error.
    errors = [best_match([e]) for e in validator.iter_errors(body)]
    errors.sort(key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  at /{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:10]]
        raise ResponseMismatch(f"{operation_id} {status}: {len(errors)} schema error(s)\n" + "\n".join(lines))


# ----- requests ---------------------------------------------------------------------------------------

@functools.cache
def _path_patterns() -> list[tuple[re.Pattern[str], str, int]]:
    pats = []
    for template in load_doc()["paths"]:
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        literal = sum(1 for seg in template.split("/") if seg and not seg.startswith("{"))
        pats.append((re.compile(regex), template, literal))
    # Most literal segments first: /listings/batch must beat /listings/{listing_id}.
    pats.sort(key=lambda p: -p[2])
    return pats


def _coerce(name: str, raw: str, schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    try:
        if kind == "integer":
            if not re.fullmatch(r"-?\d+", raw):
                raise ValueError
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind == "boolean":
            if raw not in ("true", "false"):
                raise ValueError
            return raw == "true"
    except ValueError:
        raise RequestMismatch(f"parameter {name}={raw!r} is not a valid {kind}") from None
    return raw


def _check_value(name: str, values: Sequence[str], schema: Mapping[str, Any]) -> None:
    if schema.get("type") == "array":
        items = [part for v in values for part in v.split(",")]
        value: Any = [_coerce(name, i, schema.get("items", {})) for i in items]
    else:
        if len(values) != 1:
            raise RequestMismatch(f"parameter {name} given {len(values)} times")
        value = _coerce(name, values[0], schema)
    js = _oas30_to_jsonschema({k: v for k, v in schema.items() if k != "default"})
    errors = list(jsonschema.Draft7Validator(js).iter_errors(value))
    if errors:
        raise RequestMismatch(f"parameter {name}={values!r}: {errors[0].message}")


def match_request(method: str, path: str, query_params: Mapping[str, str | Sequence[str]] | None = None,
                  *, form: Mapping[str, Any] | None = None, content_type: str | None = None) -> str:
    """The operationId this request matches, or :class:`RequestMismatch` (see module doc)."""
    method = method.upper()
    path = urlsplit(path).path or path
    query = {k: [v] if isinstance(v, str) else list(v) for k, v in (query_params or {}).items()}
    extra = EXTRA_OPERATIONS.get((method, path))
    if extra is not None:
        if query:
            raise RequestMismatch(f"{extra} takes no query parameters, got {sorted(query)}")
        unknown = set(form or {}) - _TOKEN_FORM
        if unknown:
            raise RequestMismatch(f"{extra}: unknown form fields {sorted(unknown)}")
        if content_type is not None and not content_type.startswith("application/x-www-form-urlencoded"):
            raise RequestMismatch(f"{extra} must be form-encoded, not {content_type}")
        return extra
    doc = load_doc()
    candidates = [(m, t) for pat, t, _ in _path_patterns() if (m := pat.match(path))]
    if not candidates:
        raise RequestMismatch(f"no documented path matches {path}")
    for match, template in candidates:
        op = doc["paths"][template].get(method.lower())
        if op is None:
            continue
        params = {(p["name"], p["in"]): p for p in op.get("parameters", [])}
        for name, raw in match.groupdict().items():
            _check_value(name, [raw], params[(name, "path")]["schema"])
        for name, values in query.items():
            p = params.get((name, "query"))
            if p is None:
                raise RequestMismatch(f"{op['operationId']}: undocumented query parameter {name!r}")
            _check_value(name, values, p["schema"])
        for (name, where), p in params.items():
            if where == "query" and p.get("required") and name not in query:
                raise RequestMismatch(f"{op['operationId']}: required query parameter {name!r} missing")
        _check_body(op, form, content_type)
        return op["operationId"]
    raise RequestMismatch(f"{method} is not documented for {path} ({candidates[0][1]})")


def assert_requests_documented(recorded: Sequence[Any]) -> list[str]:
    """Match every request of a sandbox log (``sb.requests``) against the document.

    Sandbox-only paths (consent page, served files) are skipped; returns the operationIds in order and
    raises :class:`RequestMismatch` naming the first offending request.
    """
    ops = []
    for req in recorded:
        if req.operation in ("file", "oauthConnect"):
            continue
        try:
            ops.append(match_request(req.method, req.path, req.query, form=req.form or None,
                                     content_type=req.headers.get("content-type")))
        except RequestMismatch as err:
            raise RequestMismatch(f"{req.method} {req.path} {req.query}: {err}") from None
    return ops


def _check_body(op: Mapping[str, Any], form: Mapping[str, Any] | None,
                content_type: str | None) -> None:
    body = op.get("requestBody", {}).get("content", {})
    if content_type is not None and form:
        ctype = content_type.split(";")[0].strip().lower()
        if ctype not in body:
            raise RequestMismatch(f"{op['operationId']}: body must be one of {sorted(body)}, not {ctype}")
        allowed = set(body[ctype]["schema"].get("properties", {}))
    elif form:
        allowed = {k for c in body.values() for k in c.get("schema", {}).get("properties", {})}
    else:
        return
    unknown = set(form) - allowed
    if unknown:
        raise RequestMismatch(f"{op['operationId']}: undocumented body fields {sorted(unknown)}")
