"""What a Service asks for: its family, policy, ports, sharing keys, requested IPs and pool."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from metallb_core._addresses import parse_go_ip
from metallb_core._errors import InvalidService
from metallb_core._model import FrozenMap, Model

Family = Literal["ipv4", "ipv6", "dual"]


class Port(Model):
    """A service port: protocol and number; ``str(port)`` is ``"<proto>/<port>"``.

    Protocols compare exactly, as in MetalLB: ``TCP/80`` and ``tcp/80`` are different ports.

    >>> str(Port("TCP", 80))
    'TCP/80'
    """

    _error: ClassVar[type[ValueError]] = InvalidService
    _what: ClassVar[str] = "invalid port"

    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.protocol}/{self.port}"


class ServiceRequest(Model):
    """Everything the allocator needs to know about one Service.

    ``key`` is ``namespace/name``; when ``namespace`` is not given it is read from the key.
    ``requested_ips`` are kept in the order given, as canonical address strings;
    an empty ``requested_pool`` means none.

    >>> r = ServiceRequest(key="web/nginx", requested_ips=["2001:db8:0::1"])
    >>> r.namespace, r.requested_ips
    ('web', ('2001:db8::1',))
    """

    _error: ClassVar[type[ValueError]] = InvalidService
    _what: ClassVar[str] = "invalid service request"

    key: str
    namespace: str = ""
    labels: FrozenMap = Field(default_factory=FrozenMap)
    family: Family = "ipv4"
    primary_family: Literal["ipv4", "ipv6"] = "ipv4"
    policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] = "SingleStack"
    ports: tuple[Port, ...] = ()
    sharing_key: str = ""
    backend_key: str = ""
    requested_ips: tuple[str, ...] = ()
    requested_pool: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _namespace_from_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("namespace"):
            key = data.get("key")
            if isinstance(key, str) and "/" in key:
                data = {**data, "namespace": key.split("/", 1)[0]}
        return data

    @field_validator("requested_ips", mode="before")
    @classmethod
    def _canonical_ips(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            return value
        out = []
        for item in value:
            ip = parse_go_ip(str(item).strip())
            if ip is None:
                raise InvalidService(f'invalid requested IP "{item}"')
            out.append(str(ip))
        return tuple(out)

    @field_validator("requested_pool", mode="after")
    @classmethod
    def _empty_pool_is_none(cls, value: str | None) -> str | None:
        return value or None
