"""Interface discovery: MetalLB's rules over sysfs, and the explicit list that overrides them."""

from __future__ import annotations

from pathlib import Path

import pytest

from announcers.arp.interfaces import (
    DEFAULT_EXCLUDE,
    IFF_BROADCAST,
    IFF_LOOPBACK,
    IFF_NOARP,
    IFF_UP,
    InterfaceInfo,
    SelectedInterface,
    SkipReason,
    discover_interfaces,
    read_interfaces,
    select_interfaces,
    skip_reason,
)
from announcers.base import UnknownInterfaceError

UP = IFF_UP | IFF_BROADCAST


def info(
    name: str, flags: int = UP, *, enslaved: bool = False, link_local: bool = True
) -> InterfaceInfo:
    return InterfaceInfo(name, flags, enslaved, link_local)


@pytest.mark.parametrize(
    ("interface", "reason"),
    [
        (info("eth0"), None),
        (info("bond0"), None),
        (info("br0"), None),
        (info("eth0.100", link_local=False), None),
        (info("eth1", IFF_BROADCAST), SkipReason.DOWN),
        (info("eth2", enslaved=True), SkipReason.ENSLAVED),
        (info("kube-ipvs0", UP | IFF_NOARP), SkipReason.EXCLUDED),
        (info("ipvs1", UP | IFF_NOARP), SkipReason.NOARP),
        (info("lo", IFF_UP | IFF_LOOPBACK), SkipReason.EXCLUDED),
        (info("docker0"), SkipReason.EXCLUDED),
        (info("veth1234"), SkipReason.EXCLUDED),
        (info("cali12ab"), SkipReason.EXCLUDED),
        (info("flannel.1"), SkipReason.EXCLUDED),
        (info("cni0"), SkipReason.EXCLUDED),
        (info("lxc00aa"), SkipReason.EXCLUDED),
    ],
    ids=lambda value: getattr(value, "name", str(value)),
)
def test_skip_reason(interface: InterfaceInfo, reason: SkipReason | None) -> None:
    assert skip_reason(interface) == reason


def test_metallb_ships_fourteen_exclusion_patterns() -> None:
    assert len(DEFAULT_EXCLUDE) == 14


def test_lo_pattern_is_anchored() -> None:
    assert skip_reason(info("lo0")) is None


def test_families_follow_broadcast_flag_and_link_local_address() -> None:
    selected = select_interfaces(
        [
            info("eth0"),
            info("vlan5", link_local=False),
            info("wg0", IFF_UP, link_local=True),
            info("tun0", IFF_UP, link_local=False),
        ]
    )
    assert selected == [
        SelectedInterface("eth0", ipv4=True, ipv6=True),
        SelectedInterface("vlan5", ipv4=True, ipv6=False),
        SelectedInterface("wg0", ipv4=False, ipv6=True),
    ]


def test_explicit_list_overrides_every_rule() -> None:
    infos = [info("eth0"), info("veth9", IFF_BROADCAST, enslaved=True)]
    assert select_interfaces(infos, explicit=["veth9"]) == [
        SelectedInterface("veth9", ipv4=True, ipv6=True)
    ]


def test_explicit_unknown_interface_is_an_error() -> None:
    with pytest.raises(UnknownInterfaceError, match="nope"):
        select_interfaces([info("eth0")], explicit=["eth0", "nope"])


def test_explicit_duplicates_are_listed_once() -> None:
    assert len(select_interfaces([info("eth0")], explicit=["eth0", "eth0"])) == 1


def test_custom_exclusions_replace_the_default() -> None:
    selected = select_interfaces([info("eth0"), info("veth1")], exclude=[r"^eth"])
    assert [i.name for i in selected] == ["veth1"]


def fake_sysfs(root: Path, interfaces: dict[str, tuple[int, bool]]) -> Path:
    sysfs = root / "class" / "net"
    sysfs.mkdir(parents=True)
    for name, (flags, enslaved) in interfaces.items():
        (sysfs / name).mkdir()
        (sysfs / name / "flags").write_text(f"{flags:#x}\n")
        if enslaved:
            (sysfs / name / "master").symlink_to(sysfs)
    (sysfs / "bonding_masters").write_text("bond0\n")  # a file, not an interface
    return sysfs


def test_read_interfaces_from_sysfs_and_procfs(tmp_path: Path) -> None:
    sysfs = fake_sysfs(
        tmp_path, {"eth0": (0x1003, False), "eth1": (0x1003, True), "lo": (0x9, False)}
    )
    if_inet6 = tmp_path / "if_inet6"
    if_inet6.write_text(
        "fe800000000000000000000000000001 02 40 20 80     eth0\n"
        "20010db8000000000000000000000001 03 40 00 80     eth1\n"
        "00000000000000000000000000000001 01 80 10 80       lo\n"
    )
    assert read_interfaces(sysfs, if_inet6) == [
        InterfaceInfo("eth0", 0x1003, enslaved=False, link_local=True),
        InterfaceInfo("eth1", 0x1003, enslaved=True, link_local=False),
        InterfaceInfo("lo", 0x9, enslaved=False, link_local=False),
    ]


def test_discover_without_ipv6_in_the_kernel(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, {"eth0": (0x1003, False)})
    assert discover_interfaces(sysfs=sysfs, if_inet6=tmp_path / "missing") == [
        SelectedInterface("eth0", ipv4=True, ipv6=False)
    ]


def test_this_hosts_loopback_is_read_and_skipped() -> None:
    names = {i.name: i for i in read_interfaces()}
    assert names["lo"].flags & IFF_LOOPBACK
    assert "lo" not in [i.name for i in discover_interfaces()]
