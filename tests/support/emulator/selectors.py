"""Label and field selectors, parsed and matched as kube-apiserver does."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .names import _is_dns_subdomain, _is_qualified_name_part

# --------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_RE_EXISTS = re.compile(rf"(!?)\s*({_KEY})")
_RE_SET = re.compile(rf"({_KEY})\s+(in|notin)\s*\(([^()]*)\)")
_RE_EQUALITY = re.compile(rf"({_KEY})\s*(==|=|!=)\s*({_VALUE})")
_RE_COMPARE = re.compile(rf"({_KEY})\s*([<>])\s*(-?\d+)")


def _split_terms(text: str) -> list[str]:
    """Split on the commas outside parentheses (``a in (x,y),b`` has two terms)."""
    terms: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced parentheses")
        elif char == "," and depth == 0:
            terms.append(text[start:index])
            start = index + 1
    if depth:
        raise ValueError("unbalanced parentheses")
    terms.append(text[start:])
    return [term.strip() for term in terms]


@dataclasses.dataclass(frozen=True)
class _Requirement:
    key: str
    operator: str  # exists, !, =, !=, in, notin, >, <
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        match self.operator:
            case "exists":
                return value is not None
            case "!":
                return value is None
            case "=" | "in":
                return value is not None and value in self.values
            case "!=" | "notin":
                return value is None or value not in self.values
            case ">" | "<":
                try:
                    number = int(value) if value is not None else None
                except ValueError:
                    return False
                if number is None:
                    return False
                limit = int(self.values[0])
                return number > limit if self.operator == ">" else number < limit
        raise AssertionError(f"unknown operator {self.operator!r}")


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    """A parsed ``labelSelector`` query string (Kubernetes syntax; an empty one matches all).

    >>> LabelSelector.parse("app in (a,b),!canary,tier!=db").matches({"app": "a"})
    True
    """

    requirements: tuple[_Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse; ``ValueError`` on a malformed selector."""
        if not text or not text.strip():
            return cls()
        requirements: list[_Requirement] = []
        for term in _split_terms(text):
            if match := _RE_SET.fullmatch(term):
                values = tuple(v.strip() for v in match[3].split(",") if v.strip())
                if not values or any(not re.fullmatch(_VALUE, v) for v in values):
                    raise ValueError(f"invalid values in {term!r}")
                requirements.append(_Requirement(match[1], match[2], values))
            elif match := _RE_COMPARE.fullmatch(term):
                requirements.append(_Requirement(match[1], match[2], (match[3],)))
            elif match := _RE_EQUALITY.fullmatch(term):
                operator = "!=" if match[2] == "!=" else "="
                requirements.append(_Requirement(match[1], operator, (match[3],)))
            elif match := _RE_EXISTS.fullmatch(term):
                requirements.append(_Requirement(match[2], "!" if match[1] else "exists"))
            else:
                raise ValueError(f"unable to parse requirement {term!r}")
        for requirement in requirements:
            _check_label_key(requirement.key)
        return cls(tuple(requirements))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels is selected."""
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)


def _check_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if not _is_qualified_name_part(name) or (prefix and not _is_dns_subdomain(prefix)):
        raise ValueError(f"invalid label key {key!r}")


@dataclasses.dataclass(frozen=True)
class _FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal?, value)

    @classmethod
    def parse(cls, text: str | None, allowed: Sequence[str]) -> _FieldSelector:
        if not text or not text.strip():
            return cls()
        terms: list[tuple[str, bool, str]] = []
        for term in text.split(","):
            match = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(\S*)\s*", term)
            if not match:
                raise ValueError(f"invalid field selector term {term!r}")
            if match[1] not in allowed:
                raise ValueError(f'field label not supported: "{match[1]}"')
            terms.append((match[1], match[2] != "!=", match[3]))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for field, equal, value in self.terms:
            current: Any = obj
            for part in field.split("."):
                current = current.get(part) if isinstance(current, Mapping) else None
            if ((current or "") == value) != equal:
                return False
        return True
