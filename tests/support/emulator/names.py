"""Kubernetes name syntax: DNS labels and subdomains, qualified names (label keys)."""

from __future__ import annotations

import re

_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_QUALIFIED_PART = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")


def _is_dns_subdomain(text: str) -> bool:
    return 0 < len(text) <= 253 and all(_DNS_LABEL.fullmatch(p) for p in text.split("."))


def _is_qualified_name_part(text: str) -> bool:
    return 0 < len(text) <= 63 and bool(_QUALIFIED_PART.fullmatch(text))


def _is_qualified_name(text: str) -> bool:
    prefix, slash, name = text.rpartition("/")
    return _is_qualified_name_part(name) and (not slash or _is_dns_subdomain(prefix))
