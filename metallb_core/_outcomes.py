"""What transitions return: allocations, pool usage, and the expected failures.

Expected failures are values, not exceptions: ``allocate`` and ``converge`` return them. Each
carries ``reason`` (the Kubernetes event reason) and ``message`` (MetalLB's text), and a
``kind`` tag that tells them apart when serialised.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from metallb_core._addresses import AddressField, IPAddress
from metallb_core._errors import InvalidService
from metallb_core._model import Model
from metallb_core._request import Port


class Allocation(Model):
    """The addresses a Service holds, from which pool, with its ports and sharing keys.

    ``ips`` has one or two addresses: IPv4 first for automatic dual-stack allocations,
    the user's order for requested ones.
    """

    _error: ClassVar[type[ValueError]] = InvalidService
    _what: ClassVar[str] = "invalid allocation"

    key: str
    ips: tuple[AddressField, ...]
    pool: str
    ports: tuple[Port, ...] = ()
    sharing_key: str = ""
    backend_key: str = ""


_FIELDS = frozenset(Allocation.model_fields)
_new = object.__new__
_set = object.__setattr__


def trusted_allocation(
    key: str,
    ips: tuple[IPAddress, ...],
    pool: str,
    ports: tuple[Port, ...],
    sharing_key: str,
    backend_key: str,
) -> Allocation:
    """An :class:`Allocation` from values the allocator already holds validated.

    Validation would check each field again and copy the tuples; this sets the instance's
    fields as validation would (what pydantic's ``model_construct`` does, at a quarter of its
    cost). An allocation is made on every successful ``allocate``: this is the hot path.
    The result equals the validated construction (tests/core/test_state_records.py checks
    it).
    """
    alloc = _new(Allocation)
    _set(
        alloc,
        "__dict__",
        {
            "key": key,
            "ips": ips,
            "pool": pool,
            "ports": ports,
            "sharing_key": sharing_key,
            "backend_key": backend_key,
        },
    )
    _set(alloc, "__pydantic_fields_set__", set(_FIELDS))
    _set(alloc, "__pydantic_extra__", None)
    _set(alloc, "__pydantic_private__", None)
    return alloc


class PoolUsage(Model):
    """Addresses in use and still available in one pool, per family, as exact integers.

    A shared address counts once; excluded and avoided (buggy) addresses are never available.
    """

    assigned_ipv4: int
    assigned_ipv6: int
    available_ipv4: int
    available_ipv6: int


class AllocationError(Model):
    """The base of every expected allocation failure: a Kubernetes event reason and a message."""

    reason: str = "AllocationFailed"
    message: str

    def __str__(self) -> str:
        return self.message


class NoAvailableIPs(AllocationError):
    """``no available IPs`` or ``no available IPs in pool <name>``."""

    kind: Literal["no_available_ips"] = "no_available_ips"
    pool: str | None = None


class UnknownPool(AllocationError):
    """``unknown pool "<name>"``."""

    kind: Literal["unknown_pool"] = "unknown_pool"
    pool: str


class NotAllowedByConfig(AllocationError):
    """``["1.2.3.4"] is not allowed in config``: no pool owns the addresses (or not all of them)."""

    kind: Literal["not_allowed_by_config"] = "not_allowed_by_config"


class PoolNotCompatible(AllocationError):
    """``pool <name> not compatible for ip assignment``: the pool does not serve this Service."""

    kind: Literal["pool_not_compatible"] = "pool_not_compatible"
    pool: str


class SharingConflict(AllocationError):
    """``can't change sharing key for "<key>", address also in use by <keys>``."""

    kind: Literal["sharing_conflict"] = "sharing_conflict"
    holders: tuple[str, ...] = ()


class PortConflict(AllocationError):
    """``port <proto>/<port> is already in use on "<ip>"``."""

    kind: Literal["port_conflict"] = "port_conflict"


class FamilyMismatch(AllocationError):
    """The addresses' family does not fit the Service's family."""

    kind: Literal["family_mismatch"] = "family_mismatch"


class InvalidRequest(AllocationError):
    """Any other refusal of the request itself."""

    kind: Literal["invalid_request"] = "invalid_request"
