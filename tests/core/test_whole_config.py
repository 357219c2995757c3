"""The whole MetalLB configuration (issue 12): YAML as Go reads it, BGP kinds, convert, validate."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import metallb_core as core
from metallb_core._cli import run
from metallb_core._convert import convert_configmap, kubernetes_name
from metallb_core._yaml import YAMLError, dump_all, load_all
from tests.core.test_realworld_configs import CORPUS, manifest


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


# -- YAML as Go's yaml.v2 reads it ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64512:1", "64512:1"),  # PyYAML: base-60 3870721
        ("1:30", "1:30"),
        ("2001-12-14", "2001-12-14"),  # PyYAML: a date
        ("010", 8),  # Go: octal
        ("0o17", 15),
        ("1_000", 1000),
        ("1e3", 1000.0),  # PyYAML: a string
        ("y", True),  # PyYAML: a string
        ("off", False),
        ("~", None),
        ("1.2.3.4", "1.2.3.4"),
        ("3m0s", "3m0s"),
        ("'64512:1'", "64512:1"),
    ],
)
def test_scalars_resolve_as_in_go(text: str, value: Any) -> None:
    assert load_all(f"v: {text}\n") == [{"v": value}]


def test_duplicate_keys_are_refused_with_the_line() -> None:
    with pytest.raises(YAMLError, match='line 2: key "a" already set in map'):
        load_all("a: 1\na: 2\n")


@given(st.text(alphabet="0123456789:.-abexyon_", min_size=1, max_size=12))
def test_dumped_strings_read_back_unchanged(text: str) -> None:
    assert load_all(dump_all([{"k": text}])) == [{"k": text}]


def test_metallb_annotated_example_is_valid_through_the_cli() -> None:
    code, out, _ = cli("validate", str(CORPUS / "v0.10.3/manifests-example-config.yaml"))
    assert (code, out.split(":")[0]) == (0, "valid")


# -- validate on BGP-only, empty and JSON ConfigMaps ----------------------------------------


def test_validate_accepts_bgp_only_files_and_an_empty_config(tmp_path: Path) -> None:
    peer = tmp_path / "peer.yaml"
    peer.write_text(
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p}\n"
        "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1}\n"
    )
    assert cli("validate", str(peer))[:2] == (
        0,
        "valid: 0 pools (), 0 L2 advertisement(s), 0 BGP advertisement(s), 1 BGP peer(s)\n",
    )
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert cli("validate", str(empty))[0] == 0


def test_validate_reads_the_yaml_inside_a_json_configmap(tmp_path: Path) -> None:
    config = "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"},
          "data": {"config": config}}  # fmt: skip
    path = tmp_path / "cm.json"
    path.write_text(json.dumps(cm))
    assert cli("validate", str(path))[:2] == (0, "valid: 1 pools (a), 1 L2 advertisement(s)\n")


def test_null_list_entries_are_errors_not_crashes() -> None:
    with pytest.raises(core.ConfigError, match="missing pool name"):
        core.parse_configmap({"address-pools": [None]})
    cfg = core.parse_configmap(
        {
            "address-pools": [
                {
                    "name": "b",
                    "protocol": "bgp",
                    "addresses": ["10.0.0.0/24"],
                    "bgp-advertisements": [None],
                }
            ]
        }
    )
    assert [a.aggregation_length for a in cfg.bgp_advertisements] == [32]


# -- the BGP side, with MetalLB's messages -------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"peers": [{"my-asn": 1, "peer-asn": 2, "peer-address": "x"}]},
         'parsing peer #1: invalid peer IP "x"'),
        ({"peers": [{"my-asn": 1, "peer-asn": 2, "peer-address": "1.2.3.4", "hold-time": "1s"}]},
         'parsing peer #1: invalid hold time "1s": must be 0 or >=3s'),
        ({"bfd-profiles": [{"name": "a", "receive-interval": 2}]},
         "parsing bfd profile #1: invalid receive interval value: invalid value 2, must be in "
         "10-60000 range"),
        ({"bgp-communities": {"a": "99999999:1"}},
         'parsing community "a": invalid first section of community "99999999": '
         'strconv.ParseUint: parsing "99999999": value out of range'),
        ({"peers": [{"my-asn": 1, "peer-asn": 2, "peer-address": "1.2.3.4", "bfdProfile": "x"}]},
         "could not parse config: yaml: unmarshal errors: peers[0]: field bfdProfile not found "
         "in type config.peer"),
    ],
)  # fmt: skip
def test_configmap_bgp_errors_in_metallb_wording(document: dict[str, Any], message: str) -> None:
    with pytest.raises(core.ConfigError) as info:
        core.parse_configmap(document)
    assert str(info.value) == message


def test_legacy_address_pool_overlapping_an_ip_address_pool_is_refused() -> None:
    objects = [
        {"kind": "IPAddressPool", "metadata": {"name": "a"},
         "spec": {"addresses": ["10.0.0.0/16"]}},
        {"kind": "AddressPool", "metadata": {"name": "b"},
         "spec": {"protocol": "layer2", "addresses": ["10.0.1.0/24"]}},
    ]  # fmt: skip
    with pytest.raises(core.ConfigError) as info:
        core.parse_resources(objects)
    assert str(info.value) == (
        'CIDR "10.0.1.0/24" in pool "b" overlaps with already defined CIDR "10.0.0.0/16"'
    )
    assert info.value.kind == "AddressPool"


def test_legacy_layer2_address_pool_is_announced() -> None:
    cfg = core.parse_resources(
        [
            {
                "kind": "AddressPool",
                "metadata": {"name": "b"},
                "spec": {"protocol": "layer2", "addresses": ["10.0.1.0/24"]},
            }
        ]
    )
    assert [(p.name, a.pools) for p in cfg.pools for a in cfg.l2_advertisements] == [("b", ("b",))]


# -- convert ---------------------------------------------------------------------------------


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


GOLDEN = sorted(CORPUS.glob("main/configmaptocrs-config-data-*.golden.yaml"))


@pytest.mark.parametrize("golden", GOLDEN or [None], ids=lambda p: p.name if p else "missing")
def test_converter_test_data_converts_to_its_golden_output(golden: Path | None) -> None:
    if golden is None:
        manifest()  # fails under CI=true when the corpus is missing
        return
    source = golden.with_name(golden.name.replace(".golden", ""))
    document = (load_all(source.read_text()) or [None])[0]
    got = convert_configmap(document, validate=False)
    assert sorted(got, key=_key) == sorted(load_all(golden.read_text()), key=_key)


def test_convert_prints_objects_and_proves_the_seed(tmp_path: Path) -> None:
    code, out, err = cli("convert", "examples/seed/configmap.yaml", "--services",
                         "examples/seed/step-4.yaml")  # fmt: skip
    assert code == 0
    kinds = sorted(o["kind"] for o in load_all(out))
    assert kinds == ["IPAddressPool", "IPAddressPool", "L2Advertisement", "L2Advertisement"]
    assert "the same address" in err


def test_convert_names_the_services_that_would_move(tmp_path: Path) -> None:
    config = tmp_path / "cm.yaml"
    config.write_text("address-pools:\n- name: Big_Pool\n  protocol: layer2\n"
                      "  addresses: [10.0.0.0/30]\n")  # fmt: skip
    svc = tmp_path / "svc.yaml"
    svc.write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\n"
        "  annotations: {metallb.io/address-pool: Big_Pool}\n"
        "spec: {type: LoadBalancer, ports: [{port: 80}]}\n"
    )
    code, _, err = cli("convert", str(config), "--services", str(svc))
    assert code == 1
    assert "default/web: 10.0.0.0 -> <pending>" in err
    assert kubernetes_name("Big_Pool") == "big-pool"


def test_convert_refuses_a_file_without_a_configmap() -> None:
    code, out, err = cli("convert", "examples/seed/step-3.yaml")  # Services only
    assert (code, out) == (2, "")
    assert (
        err
        == "metallb-core: examples/seed/step-3.yaml: no ConfigMap or config document to convert\n"
    )


_POOL = st.fixed_dictionaries(
    {
        "name": st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
        "protocol": st.sampled_from(["layer2", "bgp"]),
        "size": st.integers(min_value=24, max_value=32),
        "auto-assign": st.booleans(),
        "avoid-buggy-ips": st.booleans(),
    }
)


@given(st.lists(_POOL, min_size=1, max_size=5, unique_by=lambda p: p["name"]))
def test_converted_objects_allocate_as_the_configmap(pools: list[dict[str, Any]]) -> None:
    from metallb_core._convert_cli import _probe_services, prove

    document = {
        "address-pools": [
            {"name": p["name"], "protocol": p["protocol"], "addresses": [f"10.{i}.0.0/{p['size']}"],
             "auto-assign": p["auto-assign"], "avoid-buggy-ips": p["avoid-buggy-ips"]}
            for i, p in enumerate(pools)
        ]
    }  # fmt: skip
    old = core.parse_configmap(document)
    new = core.parse_resources(convert_configmap(document))
    shape = [(p.name, p.cidrs, p.auto_assign, p.avoid_buggy_ips) for p in old.pools]
    assert [(p.name, p.cidrs, p.auto_assign, p.avoid_buggy_ips) for p in new.pools] == shape
    announced = {name for ad in old.l2_advertisements for name in ad.pools}
    assert {name for ad in new.l2_advertisements for name in ad.pools} == announced
    assert prove(old, new, _probe_services(old)) == []


# -- odd input is a ConfigError, never a crash -----------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2**33),
    st.sampled_from(
        [
            "",
            "x",
            "10.0.0.0/24",
            "1.2.3.4",
            "64512:1",
            "large:1:2:3",
            "3s",
            "In",
            "layer2",
            "bgp",
            "10.0.0.1-10.0.0.5",
        ]
    ),
)
_CM_KEYS = [
    "peers",
    "address-pools",
    "bgp-communities",
    "bfd-profiles",
    "name",
    "protocol",
    "addresses",
    "bgp-advertisements",
    "communities",
    "aggregation-length",
    "localpref",
    "my-asn",
    "peer-asn",
    "peer-address",
    "hold-time",
    "node-selectors",
    "match-labels",
    "match-expressions",
    "key",
    "operator",
    "values",
    "bfd-profile",
    "echo-mode",
]
_CRD_KEYS = [
    "metadata",
    "spec",
    "name",
    "namespace",
    "labels",
    "addresses",
    "ipAddressPools",
    "ipAddressPoolSelectors",
    "nodeSelectors",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "communities",
    "value",
    "myASN",
    "peerASN",
    "peerAddress",
    "holdTime",
    "passwordSecret",
    "bfdProfile",
    "aggregationLength",
    "localPref",
    "peers",
    "serviceAllocation",
    "namespaces",
    "protocol",
    "bgpAdvertisements",
    "type",
    "data",
    "interface",
    "dynamicASN",
    "echoMode",
]
_KINDS = [
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "BFDProfile",
    "Community",
    "AddressPool",
    "Secret",
    "Node",
    "Namespace",
    "List",
]


def _json_like(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        _SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(keys), inner, max_size=4)
        ),
        max_leaves=12,
    )


@given(_json_like(_CM_KEYS))
def test_any_configmap_document_is_a_config_or_a_config_error(document: Any) -> None:
    with contextlib.suppress(core.ConfigError):
        core.parse_configmap(document)


@given(_json_like(_CM_KEYS))
def test_any_configmap_document_converts_or_is_a_config_error(document: Any) -> None:
    with contextlib.suppress(core.ConfigError):
        convert_configmap(document, validate=False)


# Documents shaped like real ConfigMaps (entries null or missing keys, odd durations), which
# arbitrary JSON rarely reaches: the converter without validation must refuse them cleanly.
_CM_VALUE: st.SearchStrategy[Any] = st.one_of(
    _SCALARS,
    st.sampled_from(["90s", "-1", "1x", "a_b", ["10.0.0.0/24"], [None], [{}], {"a": "b"}]),
)


def _cm_entry(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.dictionaries(st.sampled_from(keys), _CM_VALUE, max_size=6))


_CM_PEER_KEYS = ["my-asn", "peer-asn", "peer-address", "hold-time", "keepalive-time",
                 "bfd-profile", "password", "peer-port", "router-id", "node-selectors"]  # fmt: skip
_CM_POOL = st.one_of(
    _cm_entry(["name", "protocol", "addresses", "auto-assign", "avoid-buggy-ips"]),
    st.fixed_dictionaries(
        {
            "name": _CM_VALUE,
            "protocol": st.sampled_from(["layer2", "bgp", "x"]),
            "addresses": _CM_VALUE,
            "bgp-advertisements": st.lists(
                _cm_entry(["aggregation-length", "localpref", "communities"]), max_size=2
            ),
        }
    ),
)
_CM_DOCUMENT = st.fixed_dictionaries(
    {},
    optional={
        "peers": st.lists(_cm_entry(_CM_PEER_KEYS), max_size=2),
        "address-pools": st.lists(_CM_POOL, max_size=2),
        "bfd-profiles": st.lists(_cm_entry(["name", "echo-mode", "receive-interval"]), max_size=2),
        "bgp-communities": st.dictionaries(st.sampled_from(["a", "b"]), _CM_VALUE, max_size=2),
    },
)


@given(_CM_DOCUMENT)
def test_configmap_like_documents_are_a_config_or_a_config_error(document: Any) -> None:
    with contextlib.suppress(core.ConfigError):
        core.parse_configmap(document)
    try:
        convert_configmap(document, validate=False)
        message = "converted"
    except core.ConfigError as err:
        message = str(err)
    assert message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"peers": [None]}, "peer #1: missing my-asn"),
        ({"peers": [{"my-asn": 1, "peer-address": "1.2.3.4"}]}, "peer #1: missing peer-asn"),
        (
            {"peers": [{"my-asn": 1, "peer-asn": 2, "peer-address": "1.2.3.4", "hold-time": "9"}]},
            'peer #1: hold-time: time: missing unit in duration "9"',
        ),
        ({"address-pools": [{"name": "a", "protocol": "x"}]}, "address pool #1: missing addresses"),
        ({"address-pools": [None]}, "address pool #1: missing name"),
        ({"bfd-profiles": [{}]}, "bfd profile #1: missing name"),
    ],
)
def test_unvalidated_conversion_names_the_missing_key(document: Any, message: str) -> None:
    with pytest.raises(core.ConfigError) as info:
        convert_configmap(document, validate=False)
    assert str(info.value) == message


_ANY = _json_like(_CRD_KEYS)
_OBJECT = st.fixed_dictionaries(
    {"kind": st.one_of(st.sampled_from(_KINDS), _ANY)},
    optional={
        "apiVersion": st.one_of(
            st.sampled_from(["metallb.io/v1beta1", "metallb.io/v1beta2", "v1"]), _ANY
        ),
        "metadata": st.one_of(
            _ANY,
            st.fixed_dictionaries({}, optional={"name": _ANY, "namespace": _ANY, "labels": _ANY}),
        ),
        "spec": _json_like(_CRD_KEYS),
        "items": _json_like(_CRD_KEYS),
        "type": _SCALARS,
        "data": _json_like(_CRD_KEYS),
    },
)


@given(st.lists(_OBJECT, max_size=4))
def test_any_objects_are_a_config_or_a_config_error(objects: list[dict[str, Any]]) -> None:
    try:
        core.parse_resources(objects)
        message = "valid"
    except core.ConfigError as err:
        message = str(err)
    assert message  # a ConfigError always says what is wrong


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"kind": ["IPAddressPool"], "metadata": {"name": "p"}},
            'kind: Invalid value: ["IPAddressPool"]: kind must be a string (object "p")',
        ),
        ({"kind": {"a": 1}}, 'kind: Invalid value: {"a": 1}: kind must be a string'),
        (
            {"kind": "IPAddressPool", "apiVersion": ["v1"], "metadata": {"name": "p"}},
            'parsing address pool p: apiVersion: Invalid value: "array": apiVersion in body '
            "must be of type string",
        ),
        (
            {"kind": "L2Advertisement", "metadata": {"name": {"x": 1}}},
            'L2Advertisement : metadata.name: Invalid value: "object": metadata.name in body '
            "must be of type string",
        ),
    ],
)
def test_a_kind_or_header_of_the_wrong_type_is_a_config_error(
    obj: dict[str, Any], message: str
) -> None:
    with pytest.raises(core.ConfigError) as info:
        core.parse_resources([obj])
    assert str(info.value) == message


def test_an_object_without_a_kind_is_ignored_like_other_kinds() -> None:
    config = core.parse_resources([{"metadata": {"name": "x"}}, {"kind": "ConfigMap"}])
    assert config.pools == ()


def test_a_wrong_type_is_refused_as_the_api_server_does() -> None:
    with pytest.raises(core.ConfigError) as info:
        core.parse_resources(
            [{"kind": "IPAddressPool", "metadata": {"name": "p"}, "spec": {"addresses": "x"}}]
        )
    assert str(info.value) == (
        'parsing address pool p: spec.addresses: Invalid value: "string": spec.addresses in '
        "body must be of type array"
    )
    assert (info.value.kind, info.value.name) == ("IPAddressPool", "p")


def test_config_parse_benchmark_runs_and_checks_its_configs() -> None:
    from benchmarks.config_parse import run_all

    assert [name for name, _ in run_all(pools=20, repeats=1)] == ["floor", "layer 2", "whole"]


def test_objects_of_two_namespaces_are_refused_as_the_webhooks_do() -> None:
    pool = {"kind": "IPAddressPool", "spec": {"addresses": ["10.0.0.0/24"]}}
    objects = [
        {**pool, "metadata": {"name": "a", "namespace": "metallb-system"}},
        {"kind": "L2Advertisement", "metadata": {"name": "l2"}},
        {**pool, "metadata": {"name": "b", "namespace": "default"}},
    ]
    with pytest.raises(core.ConfigError) as info:
        core.parse_resources(objects)
    assert (
        str(info.value) == "IPAddressPool b: resource must be created in metallb-system namespace"
    )
    assert len(core.parse_resources(objects[:2]).pools) == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"myASN": 1, "peerASN": 2, "peerAddress": "1.2.3.4", "peerPort": 20000},
         "parsing peer p spec.peerPort: Invalid value: 20000: spec.peerPort in body should be "
         "less than or equal to 16384"),
        ({"myASN": 2**32, "peerASN": 2, "peerAddress": "1.2.3.4"},
         "parsing peer p spec.myASN: Invalid value: 4294967296: spec.myASN in body should be "
         "less than or equal to 4294967295"),
    ],
)  # fmt: skip
def test_crd_bounds_are_checked_as_the_api_server_does(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(core.ConfigError) as info:
        core.parse_resources([{"kind": "BGPPeer", "metadata": {"name": "p"}, "spec": spec}])
    assert str(info.value) == message


def test_validate_a_mixed_layer2_and_bgp_cluster_config(tmp_path: Path) -> None:
    good = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: web, namespace: metallb-system}
spec: {addresses: [192.168.10.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {ipAddressPools: [web]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: 90s}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: metallb-system}
spec: {ipAddressPools: [web], communities: [64512:1]}
"""
    path = tmp_path / "cluster.yaml"
    path.write_text(good)
    assert cli("validate", str(path))[:2] == (
        0,
        "valid: 1 pools (web), 1 L2 advertisement(s), 1 BGP advertisement(s), 1 BGP peer(s)\n",
    )
    path.write_text(good.replace("holdTime: 90s", "holdTime: 1s"))
    assert cli("validate", str(path))[:2] == (
        1,
        'invalid: parsing peer tor invalid BGPPeer timers: invalid hold time "1s": '
        "must be 0 or >=3s\n",
    )


def test_bgppeer_v1beta1_has_its_own_schema() -> None:
    spec: dict[str, Any] = {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"}
    peer: dict[str, Any] = {"apiVersion": "metallb.io/v1beta1", "kind": "BGPPeer",
                            "metadata": {"name": "p"}, "spec": spec}  # fmt: skip
    assert len(core.parse_resources([peer]).peers) == 1
    with pytest.raises(core.ConfigError, match='parsing peer p spec: unknown field "vrf"'):
        core.parse_resources([{**peer, "spec": {**spec, "vrf": "red"}}])
    with pytest.raises(core.ConfigError, match="less than or equal to 65535"):
        core.parse_resources([{**peer, "spec": {**spec, "myASN": 4200000000}}])
    v1beta2 = {**peer, "apiVersion": "metallb.io/v1beta2"}
    assert core.parse_resources([{**v1beta2, "spec": {**spec, "vrf": "red"}}]).peers
