"""Patches: JSON merge patch, the owned-fields merge of apply, and JSON patch (RFC 6902)."""

from __future__ import annotations

import re
from typing import Any

# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------


def _clone(value: Any) -> Any:
    """A deep copy of JSON data (several times faster than ``copy.deepcopy``)."""
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clone(item) for item in value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value, the inputs are left untouched.

    >>> merge_patch({"a": 1, "b": {"c": 2}}, {"a": None, "b": {"d": 3}})
    {'b': {'c': 2, 'd': 3}}
    """
    return _merge_owned(_clone(target), patch)


def _merge_owned(target: Any, patch: Any) -> Any:
    # ``target`` is a private copy already: merged in place, nothing cloned twice.
    if not isinstance(patch, dict):
        return _clone(patch)
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_owned(result.get(key), value)
    return result


class JsonPatchError(ValueError):
    """A JSON patch that cannot be applied (bad operation, missing path, failed ``test``)."""


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise JsonPatchError(f"invalid JSON pointer {path!r}")
    if not path:
        return []
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _index(container: list[Any], token: str, *, insert: bool) -> int:
    if insert and token == "-":
        return len(container)
    if not re.fullmatch(r"0|[1-9][0-9]*", token):
        raise JsonPatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (not insert and index == len(container)):
        raise JsonPatchError(f"array index {index} out of range")
    return index


def _resolve(doc: Any, tokens: list[str]) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                raise JsonPatchError(f"path element {token!r} not found")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, insert=False)]
        else:
            raise JsonPatchError(f"cannot descend into {type(current).__name__}")
    return current


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], insert=True), value)
    else:
        raise JsonPatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise JsonPatchError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise JsonPatchError(f"path element {tokens[-1]!r} not found")
        return parent.pop(tokens[-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, tokens[-1], insert=False))
    raise JsonPatchError("cannot remove from a scalar")


# C901 accepted: a flat table: one branch per RFC 6902 operation.
def apply_json_patch(doc: Any, operations: Any) -> Any:  # noqa: C901
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test); returns a new document.

    >>> apply_json_patch({"a": [1]}, [{"op": "add", "path": "/a/-", "value": 2}])
    {'a': [1, 2]}
    """
    if not isinstance(operations, list):
        raise JsonPatchError("a JSON patch is a list of operations")
    doc = _clone(doc)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise JsonPatchError(f"invalid operation {operation!r}")
        op = operation["op"]
        tokens = _pointer(operation.get("path"))
        if op in ("add", "replace", "test") and "value" not in operation:
            raise JsonPatchError(f"{op} needs a value")
        if op == "add":
            doc = _add(doc, tokens, _clone(operation["value"]))
        elif op == "remove":
            _remove(doc, tokens)
        elif op == "replace":
            _resolve(doc, tokens)  # must exist
            if tokens:
                _remove(doc, tokens)
            doc = _add(doc, tokens, _clone(operation["value"]))
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from"))
            if op == "move" and tokens[: len(source)] == source and tokens != source:
                raise JsonPatchError("cannot move a value into itself")
            value = _clone(_resolve(doc, source))
            if op == "move":
                _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif op == "test":
            if _resolve(doc, tokens) != operation["value"]:
                raise JsonPatchError(f"test failed at {operation.get('path')!r}")
        else:
            raise JsonPatchError(f"unknown operation {op!r}")
    return doc
