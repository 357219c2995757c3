"""The base of every value type: frozen pydantic models that raise the project's errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, ValidationError
from pydantic_core import core_schema

from metallb_core._errors import ConfigError, InvalidService


def describe_validation_error(err: ValidationError, what: str) -> str:
    """One line naming the field, the value and what is wrong, from pydantic's first error."""
    first = err.errors(include_url=False)[0]
    ctx_error = first.get("ctx", {}).get("error")
    if isinstance(ctx_error, (ConfigError, InvalidService)):
        return str(ctx_error)  # our own message, already naming what is wrong
    # Drop pydantic's internal steps ("function-after[...]") from the field path.
    field = ".".join(str(p) for p in first["loc"] if "[" not in str(p)) or "(input)"
    message = str(ctx_error) if isinstance(ctx_error, ValueError) else first["msg"]
    return f"{what}: field {field!r}: {message} (got {first['input']!r})"


class Model(BaseModel):
    """Frozen, strict about unknown fields, positional arguments in field order.

    A validation failure raises ``_error`` (a ``ValueError`` subclass chosen by the class)
    with one readable line, never a bare pydantic ``ValidationError``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    _error: ClassVar[type[ValueError]] = ValueError
    _what: ClassVar[str] = "invalid value"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args:
            names = list(type(self).model_fields)
            if len(args) > len(names):
                raise self._error(f"{self._what}: too many positional arguments")
            for name, value in zip(names, args, strict=False):
                if name in kwargs:
                    raise self._error(f"{self._what}: {name!r} given twice")
                kwargs[name] = value
        try:
            super().__init__(**kwargs)
        except ValidationError as err:
            what = self._what
            if isinstance(kwargs.get("name"), str):
                what = f'{what} "{kwargs["name"]}"'
            elif isinstance(kwargs.get("key"), str):
                what = f'{what} "{kwargs["key"]}"'
            raise self._error(describe_validation_error(err, what)) from None


class FrozenMap(Mapping[str, str]):
    """An immutable, hashable ``str -> str`` mapping (labels), usable as a pydantic field.

    >>> m = FrozenMap({"b": "2", "a": "1"})
    >>> dict(m), hash(m) == hash(FrozenMap({"a": "1", "b": "2"}))
    ({'a': '1', 'b': '2'}, True)
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data: dict[str, str] = dict(sorted((data or {}).items()))
        self._hash = hash(tuple(self._data.items()))

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(dict),
        )

    @classmethod
    def _coerce(cls, value: object) -> FrozenMap:
        if isinstance(value, FrozenMap):
            return value
        if value is None:
            return cls()
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError("expected a mapping of strings to strings")
        return cls(value)
