"""Kubernetes label selectors (``matchLabels`` / ``matchExpressions``), matched in pure code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from metallb_core._errors import ConfigError
from metallb_core._model import FrozenMap, Model


class LabelSelectorRequirement(Model):
    """One ``matchExpressions`` entry: ``key`` ``operator`` ``values``."""

    _error: ClassVar[type[ValueError]] = ConfigError
    _what: ClassVar[str] = "invalid label selector requirement"

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ConfigError(
                f"invalid label selector: {self.operator} needs values for {self.key!r}"
            )
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ConfigError(
                f"invalid label selector: {self.operator} takes no values for {self.key!r}"
            )
        if len(set(self.values)) != len(self.values):
            dup = next(v for v in self.values if self.values.count(v) > 1)
            raise ConfigError(
                f'duplicate definition of match expression value in label selector "{dup}"'
            )
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement (Kubernetes semantics)."""
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels

    def __str__(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        op = "in" if self.operator == "In" else "notin"
        return f"{self.key} {op} ({','.join(sorted(self.values))})"


class LabelSelector(Model):
    """A Kubernetes ``LabelSelector``; the empty selector matches everything.

    Accepts the Kubernetes spelling (``matchLabels``, ``matchExpressions``) and the Python one.

    >>> s = LabelSelector(matchLabels={"app": "web"})
    >>> s.matches({"app": "web", "tier": "x"}), s.matches({}), str(s)
    (True, False, 'app=web')
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True)
    _error: ClassVar[type[ValueError]] = ConfigError
    _what: ClassVar[str] = "invalid label selector"

    match_labels: FrozenMap = Field(default_factory=FrozenMap, alias="matchLabels")
    match_expressions: tuple[LabelSelectorRequirement, ...] = Field(
        default=(), alias="matchExpressions"
    )

    @model_validator(mode="after")
    def _no_duplicate_expressions(self) -> LabelSelector:
        seen: set[tuple[str, str, tuple[str, ...]]] = set()
        for expr in self.match_expressions:
            key = (expr.key, expr.operator, tuple(sorted(expr.values)))  # MetalLB sorts values
            if key in seen:
                raise ConfigError(f"duplicate definition of match expressions {expr}")
            seen.add(key)
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every label and every expression."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            e.matches(labels) for e in self.match_expressions
        )

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels.items()]
        parts += [str(e) for e in self.match_expressions]
        return ",".join(parts) if parts else "<everything>"


MATCH_EVERYTHING = LabelSelector()
"""The selector MetalLB derives for a ``serviceAllocation`` with no restriction at all."""


def selector_from(value: object, what: str) -> LabelSelector:
    """A selector from a Kubernetes dict (or a selector), raising ConfigError naming ``what``."""
    if isinstance(value, LabelSelector):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"invalid {what} {value!r}: a label selector must be a mapping")
    return LabelSelector(**{str(k): v for k, v in value.items()})
