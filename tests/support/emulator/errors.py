"""Errors as kube-apiserver returns them: ``Status`` bodies and their HTTP responses."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp.web
from kmock import KubernetesError
from kmock._internal import rendering

from .common import JsonDict
from .resources import ResourceSpec

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _error(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> KubernetesError:
    return KubernetesError(code, reason, message, dict(details) if details else None)


def _details(spec: ResourceSpec, name: str | None) -> JsonDict:
    details: JsonDict = {"kind": spec.plural}
    if name is not None:
        details["name"] = name
    if spec.group:
        details["group"] = spec.group
    return details


def _not_found(spec: ResourceSpec, name: str) -> KubernetesError:
    return _error(404, "NotFound", f'{spec.qualified} "{name}" not found', _details(spec, name))


def _no_such_path() -> KubernetesError:
    return _error(404, "NotFound", "the server could not find the requested resource")


def _conflict(spec: ResourceSpec, name: str, why: str | None = None) -> KubernetesError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return _error(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {spec.qualified} "{name}": {why}',
        _details(spec, name),
    )


def _bad_request(message: str) -> KubernetesError:
    return _error(400, "BadRequest", message)


def _invalid(spec: ResourceSpec, name: str, causes: Sequence[tuple[str, str]]) -> KubernetesError:
    texts = [f"{field}: {message}" for field, message in causes]
    text = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = _details(spec, name) | {
        "kind": spec.kind,
        "causes": [
            {"reason": "FieldValueInvalid", "message": message, "field": field}
            for field, message in causes
        ],
    }
    return _error(422, "Invalid", f'{spec.kind} "{name}" is invalid: {text}', details)


def api_error(code: int, reason: str = "InternalError", message: str | None = None) -> Any:
    """A kmock reaction payload answering an API error lightkube turns into ``ApiError``.

    ``apiserver["patch /api/v1/namespaces/default/services/web/status"] << api_error(500)``;
    a bare ``<< 500`` has no Content-Type, on which lightkube 1.0.1 fails with ``KeyError``.
    """
    body = status_body(_error(code, reason, message or f"{reason} (injected)"))
    return rendering.Response(
        status=code, headers={"Content-Type": "application/json"}, payload=_dumps(body)
    )


def status_body(error: KubernetesError) -> JsonDict:
    """The ``Status`` object the emulator answers for an error."""
    body: JsonDict = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message or error.reason or "error",
        "reason": error.reason or "InternalError",
        "code": error.status,
    }
    if error.details:
        body["details"] = error.details
    return body


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _json_response(body: Any, status: int = 200) -> aiohttp.web.Response:
    # content_type without charset: lightkube wants exactly "application/json".
    return aiohttp.web.Response(body=_dumps(body), status=status, content_type="application/json")


def _error_response(error: KubernetesError) -> aiohttp.web.Response:
    return _json_response(status_body(error), status=error.status)
