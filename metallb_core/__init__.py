"""metallb_core: MetalLB's Layer-2 allocation decisions as pure functions.

The public API is documented in ``docs/api.md``. Nothing here performs I/O, reads a clock,
the environment or randomness, or mutates an argument.

>>> import metallb_core as core
>>> state = core.State.empty(core.Config(pools=[core.Pool(name="default", cidrs=["10.0.0.0/30"])]))
>>> state, allocation = core.allocate(state, core.ServiceRequest(key="web/nginx"))
>>> [str(ip) for ip in allocation.ips]
['10.0.0.0']
"""

from metallb_core._allocator import allocate, orphans, pool_usage, release, reload
from metallb_core._bgp import BFDProfile, BGPAdvertisement, Peer
from metallb_core._config import Config, L2Advertisement, Pool, ServiceAllocation
from metallb_core._converge import (
    INPUTS_ANNOTATION,
    Convergence,
    Event,
    converge,
    converge_all,
    inputs_digest,
)
from metallb_core._errors import ConfigError, InvalidService
from metallb_core._l2 import announcing_node
from metallb_core._outcomes import (
    Allocation,
    AllocationError,
    FamilyMismatch,
    InvalidRequest,
    NoAvailableIPs,
    NotAllowedByConfig,
    PoolNotCompatible,
    PoolUsage,
    PortConflict,
    SharingConflict,
    UnknownPool,
)
from metallb_core._parse import parse_configmap, parse_resources
from metallb_core._plan import StatusWrite, may_share, next_writes, settle
from metallb_core._request import Port, ServiceRequest
from metallb_core._selectors import LabelSelector, LabelSelectorRequirement
from metallb_core._service import request_from_service
from metallb_core._speaker import (
    AnnounceChange,
    Announcement,
    AnnouncePlan,
    AnnounceReport,
    NodeFacts,
    NodeInterface,
    NotAnnounced,
    ServiceAnnounced,
    ServiceEndpoints,
    announce_pairs,
    elect,
    plan_announcements,
    report_announcements,
    speaker_frozen,
)
from metallb_core._state import State

#: The release, as in pyproject.toml (a test keeps the two equal).
__version__ = "0.1.0"

__all__ = [
    "INPUTS_ANNOTATION",
    "Allocation",
    "AllocationError",
    "AnnounceChange",
    "AnnouncePlan",
    "AnnounceReport",
    "Announcement",
    "BFDProfile",
    "BGPAdvertisement",
    "Config",
    "ConfigError",
    "Convergence",
    "Event",
    "FamilyMismatch",
    "InvalidRequest",
    "InvalidService",
    "L2Advertisement",
    "LabelSelector",
    "LabelSelectorRequirement",
    "NoAvailableIPs",
    "NodeFacts",
    "NodeInterface",
    "NotAllowedByConfig",
    "NotAnnounced",
    "Peer",
    "Pool",
    "PoolNotCompatible",
    "PoolUsage",
    "Port",
    "PortConflict",
    "ServiceAllocation",
    "ServiceAnnounced",
    "ServiceEndpoints",
    "ServiceRequest",
    "SharingConflict",
    "State",
    "StatusWrite",
    "UnknownPool",
    "allocate",
    "announce_pairs",
    "announcing_node",
    "converge",
    "converge_all",
    "elect",
    "inputs_digest",
    "may_share",
    "next_writes",
    "orphans",
    "parse_configmap",
    "parse_resources",
    "plan_announcements",
    "pool_usage",
    "release",
    "reload",
    "report_announcements",
    "request_from_service",
    "settle",
    "speaker_frozen",
]
