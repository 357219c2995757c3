"""YAML read as MetalLB and kubectl read it (Go's ``yaml.v2``), and written back.

A CLI module: it imports PyYAML (the ``cli`` extra) lazily, and the pure core never imports
it. PyYAML implements YAML 1.1 with resolutions that Go's ``yaml.v2`` does not have, so the
same text would mean something else to MetalLB:

- **base-60 numbers**: PyYAML reads ``64512:1`` (a BGP community) as the integer 3870721 and
  ``1:30`` as 90; Go reads both as strings.
- **timestamps**: PyYAML reads ``2001-12-14`` as a ``date``; Go keeps the text.
- **numbers**: Go reads ``1e3`` as a float (PyYAML: a string), ``010`` as octal 8 and
  ``0o17`` as 15, with ``_`` ignored, as ``strconv.ParseInt(s, 0, 64)`` does.
- **booleans**: Go also reads ``y``, ``Y``, ``n``, ``N`` as booleans.
- **the ``=`` value key**: PyYAML gives it a special tag; Go keeps the text.
- **duplicate keys**: PyYAML keeps the last one; MetalLB's strict decoding of the ConfigMap
  and kubectl's strict field validation refuse them (``key "x" already set in map``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

_BOOL_TRUE = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}
_BOOL_FALSE = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile("^(?:" + "|".join(sorted(_BOOL_TRUE | _BOOL_FALSE)) + ")$")
_NUMBER = re.compile(r"^[-+.0-9][-+.0-9a-zA-Z_]*$")
_SPECIAL_FLOAT = {
    ".inf": float("inf"),
    ".Inf": float("inf"),
    ".INF": float("inf"),
    "+.inf": float("inf"),
    "+.Inf": float("inf"),
    "+.INF": float("inf"),
    "-.inf": float("-inf"),
    "-.Inf": float("-inf"),
    "-.INF": float("-inf"),
    ".nan": float("nan"),
    ".NaN": float("nan"),
    ".NAN": float("nan"),
}
_INT64 = 1 << 63
_UINT64 = 1 << 64
_GO_FLOAT = re.compile(
    r"^[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|0[xX][0-9a-fA-F.]+[pP][-+]?[0-9]+)$"
)


class YAMLError(ValueError):
    """Text that is not YAML; the message says where, in one line. ``original`` is PyYAML's
    error, with its marks (line and column), when PyYAML raised it."""

    def __init__(self, message: str, original: Exception | None = None) -> None:
        super().__init__(message)
        self.original = original


def _go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)`` (then ``ParseUint``), or ``None``."""
    sign = 1
    body = text
    if body[:1] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if not body:
        return None
    lowered = body.lower()
    try:
        if lowered.startswith("0x"):
            value = int(body[2:], 16)
        elif lowered.startswith("0b"):
            value = int(body[2:], 2)
        elif lowered.startswith("0o"):
            value = int(body[2:], 8)
        elif len(body) > 1 and body[0] == "0":
            value = int(body[1:], 8)
        elif body.isdigit():
            value = int(body, 10)
        else:
            return None
    except ValueError:
        return None
    value *= sign
    if -_INT64 <= value < _UINT64:
        return value
    return None


def _go_number(text: str) -> Any:
    """What ``yaml.v2`` resolves a plain scalar starting like a number to."""
    plain = text.replace("_", "")
    value = _go_int(plain)
    if value is not None:
        return value
    if _GO_FLOAT.match(plain):
        try:
            return float(plain)
        except ValueError:
            return text
    return text


def _reads_as_text(value: str) -> bool:
    """Whether Go reads ``value``, written plain, back as this string."""
    if _NULL.match(value) or _BOOL.match(value) or value in _SPECIAL_FLOAT:
        return False
    return not _NUMBER.match(value) or isinstance(_go_number(value), str)


@functools.cache
def _loader_class() -> Any:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when there is one

    class GoLoader(base):  # type: ignore[misc,valid-type]
        """SafeLoader with Go ``yaml.v2``'s implicit types, refusing duplicate keys."""

    GoLoader.yaml_implicit_resolvers = {}
    GoLoader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
    GoLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("yYnNtTfFoO"))
    GoLoader.add_implicit_resolver("tag:go,number", _NUMBER, list("-+.0123456789"))
    GoLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])

    def construct_bool(loader: Any, node: Any) -> bool:
        return str(node.value) in _BOOL_TRUE

    def construct_number(loader: Any, node: Any) -> Any:
        value = str(node.value)
        if value in _SPECIAL_FLOAT:
            return _SPECIAL_FLOAT[value]
        return _go_number(value)

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise YAMLError(
                    f"line {key_node.start_mark.line + 1}: a mapping key must be a scalar"
                ) from None
            if key in out:
                raise YAMLError(
                    f'line {key_node.start_mark.line + 1}: key "{key}" already set in map'
                )
            out[key] = loader.construct_object(value_node, deep=deep)
        return out

    def construct_map_node(loader: Any, node: Any) -> Any:
        data: dict[Any, Any] = {}
        yield data
        data.update(construct_mapping(loader, node))

    GoLoader.add_constructor("tag:yaml.org,2002:bool", construct_bool)
    GoLoader.add_constructor("tag:go,number", construct_number)
    GoLoader.add_constructor("tag:yaml.org,2002:map", construct_map_node)

    def construct_text(loader: Any, node: Any) -> str:
        return str(node.value)

    GoLoader.add_constructor("tag:yaml.org,2002:timestamp", construct_text)
    return GoLoader


def _first_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def load_all(text: str) -> list[Any]:
    """Every document of ``text`` as Go reads it (empty documents dropped).

    Raises :class:`YAMLError` for text that is not YAML, or a mapping with a duplicate key.
    Raises ``ImportError`` when PyYAML is missing.
    """
    import yaml

    try:
        return [doc for doc in yaml.load_all(text, Loader=_loader_class()) if doc is not None]
    except yaml.YAMLError as err:
        raise YAMLError(_first_line(err), err) from None
    except RecursionError:
        raise YAMLError("nested too deeply") from None


def load(text: str) -> Any:
    """The one document of ``text`` (``None`` when empty); more than one is an error."""
    docs = load_all(text)
    if len(docs) > 1:
        raise YAMLError("expected one YAML document, found several")
    return docs[0] if docs else None


def dump_all(documents: Iterable[Any]) -> str:
    """Documents as YAML text, separated by ``---``, keys in the given order.

    Strings that Go (or YAML 1.1) would read as another type are quoted.
    """
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: Any, value: str) -> Any:
        style = None
        if not _reads_as_text(value) or ":" in value or value != value.strip():
            style = '"'
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, represent_str)
    return str(
        yaml.dump_all(
            list(documents),
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            explicit_start=False,
        )
    )
