"""The ``metallb-core`` command line, on good and bad files, in-process and as a process."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from metallb_core._cli import run

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"
CONFIG = str(SEED / "configmap.yaml")
STEPS = [str(p) for p in sorted(SEED.glob("step-*.yaml"))]


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def json_plan(*argv: str) -> list[dict[str, Any]]:
    code, out, _ = cli("plan", *argv, "--output", "json")
    assert code == 0
    steps: list[dict[str, Any]] = json.loads(out)["steps"]
    return steps


def external(step: dict[str, Any]) -> dict[str, list[str]]:
    return {f"{r['namespace']}/{r['name']}": r["externalIPs"] for r in step["services"]}


def test_plan_walks_the_seed_through_all_five_steps() -> None:
    steps = json_plan(*STEPS)
    nginx = {"without-istio/nginx": ["10.206.65.234"]}
    assert [external(s) for s in steps] == [
        nginx,
        {**nginx, "without-istio/nginx-manual": ["10.206.65.224"]},
        {**nginx, "without-istio/nginx-manual": ["10.206.65.225"]},
        {
            **nginx,
            "without-istio/nginx-expensive": ["10.206.65.224"],
            "without-istio/nginx-manual": ["10.206.65.225"],
        },
        {
            **nginx,
            "default/nginx-manual-2": [],
            "without-istio/nginx-expensive": ["10.206.65.224"],
            "without-istio/nginx-manual": ["10.206.65.225"],
        },
    ]
    assert [s["pools"] for s in steps] == [["default"], *[["default", "expensive"]] * 4]
    assert [s["configChanged"] for s in steps] == [True, True, False, True, False]


def test_plan_events_are_the_posts_with_no_deprecation_warning() -> None:
    steps = json_plan(*STEPS)
    events = [
        (f"{r['namespace']}/{r['name']}", e["type"], e["reason"])
        for s in steps
        for r in s["services"]
        for e in r["events"]
    ]
    assert events == [
        ("without-istio/nginx", "Normal", "IPAllocated"),
        ("without-istio/nginx-manual", "Normal", "IPAllocated"),
        ("without-istio/nginx-manual", "Normal", "IPAllocated"),
        ("without-istio/nginx-expensive", "Normal", "IPAllocated"),
        ("default/nginx-manual-2", "Warning", "AllocationFailed"),
    ]


def test_the_live_configmap_edit_adds_a_pool_without_moving_anyone() -> None:
    """Step 2's ConfigMap adds `expensive` to the config step 1 put in force: nginx keeps
    its address, and the new pool serves the Service that asks for it."""
    first, second = json_plan(STEPS[0], STEPS[1])
    assert (first["config"], second["config"]) == (STEPS[0], STEPS[1])
    assert external(second)["without-istio/nginx"] == ["10.206.65.234"]
    nginx = next(r for r in second["services"] if r["name"] == "nginx")
    assert nginx["events"] == []


def test_a_config_only_file_between_steps_is_a_step_with_the_same_services(
    tmp_path: Path,
) -> None:
    shrunk = tmp_path / "shrunk.yaml"
    shrunk.write_text(
        "address-pools:\n- {name: default, protocol: layer2, addresses: [10.206.65.240/28]}\n"
    )
    first, second = json_plan(STEPS[0], str(shrunk))
    assert external(first) == {"without-istio/nginx": ["10.206.65.234"]}
    assert external(second) == {"without-istio/nginx": ["10.206.65.240"]}
    [row] = second["services"]
    assert [e["reason"] for e in row["events"]] == ["ClearAssignment", "IPAllocated"]


def test_a_config_given_first_still_works_and_step_configs_replace_it() -> None:
    steps = json_plan(CONFIG, *STEPS)
    assert [s["file"] for s in steps] == STEPS
    assert steps[0]["pools"] == ["default"]


def test_services_without_any_config_before_them_are_an_error(tmp_path: Path) -> None:
    services = tmp_path / "svc.yaml"
    services.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: www}\nspec: {type: LoadBalancer}\n"
    )
    code, out, err = cli("plan", str(services))
    assert (code, out) == (2, "")
    assert err == (
        f"metallb-core: {services}: no configuration before these Services: give a CONFIG"
        " file first, or put the ConfigMap in this file\n"
    )


def test_plan_table_shows_pending_and_the_warning_event_as_kubectl_would() -> None:
    code, out, _ = cli("plan", *STEPS)
    assert code == 0
    last = out.split("== step 5:")[1]
    pending = [line for line in last.splitlines() if line.startswith("default ")]
    assert pending[0].split() == [
        "default",
        "nginx-manual-2",
        "LoadBalancer",
        "10.96.40.4",
        "<pending>",
        "80:30605/TCP",
        "<none>",
    ]
    assert "kubectl describe svc -n default nginx-manual-2:\nEvents:\n" in last
    assert re.search(
        r"Warning +AllocationFailed +metallb-controller +Failed to allocate IP for "
        r"\"default/nginx-manual-2\": no available IPs in pool expensive",
        last,
    )


def test_plan_namespace_shows_what_kubectl_get_svc_n_shows() -> None:
    code, out, _ = cli("plan", "-n", "without-istio", *STEPS)
    assert code == 0
    last = out.split("== step 5:")[1].splitlines()
    table = [line.split() for line in last if line and not line.startswith(("#", " "))]
    assert table[:4] == [
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "POOL"],
        ["nginx", "LoadBalancer", "10.96.12.7", "10.206.65.234", "80:31466/TCP", "default"],
        [
            "nginx-expensive",
            "LoadBalancer",
            "10.96.40.3",
            "10.206.65.224",
            "80:32097/TCP",
            "expensive",
        ],
        [
            "nginx-manual",
            "LoadBalancer",
            "10.96.40.2",
            "10.206.65.225",
            "80:30818/TCP",
            "expensive",
        ],
    ]
    assert not [line for line in out.splitlines() if line.startswith(("default", "nginx-manual-2"))]


def test_plan_reads_crd_objects_and_kubectl_json(tmp_path: Path) -> None:
    config = tmp_path / "pools.json"
    config.write_text(
        json.dumps(
            {
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "metallb.io/v1beta1",
                        "kind": "IPAddressPool",
                        "metadata": {"name": "lan", "namespace": "metallb-system"},
                        "spec": {"addresses": ["192.168.1.240/29"]},
                    }
                ],
            }
        )
    )
    services = tmp_path / "svc.json"
    services.write_text(
        json.dumps(
            {
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"namespace": "web", "name": "www"},
                        "spec": {
                            "type": "LoadBalancer",
                            "clusterIP": "10.96.1.1",
                            "ports": [{"port": 443}],
                        },
                    }
                ],
            }
        )
    )
    [step] = json_plan(str(config), str(services))
    assert external(step) == {"web/www": ["192.168.1.240"]}


def test_explain_says_why_a_service_is_pending() -> None:
    code, out, _ = cli("explain", *STEPS, "default/nginx-manual-2")
    assert code == 0
    assert "path: requested pool expensive" in out
    assert "not requested (the Service asks for pool expensive)" in out
    assert "exhausted" in out
    assert "result: <pending>: no available IPs in pool expensive" in out


def test_explain_says_auto_assign_off_pools_are_skipped() -> None:
    code, out, _ = cli("explain", *STEPS[:2], "without-istio/nginx")
    assert code == 0
    assert "auto-assign is off" in out
    assert "result: 10.206.65.234 from pool default" in out


def test_validate_accepts_the_seed_config() -> None:
    assert cli("validate", CONFIG)[:2] == (
        0,
        "valid: 2 pools (default, expensive), 1 L2 advertisement(s)\n",
    )


def test_validate_reports_metallb_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text(
        "address-pools:\n"
        "- {name: a, protocol: layer2, addresses: [10.0.0.0/8]}\n"
        "- {name: b, protocol: layer2, addresses: [10.1.0.0/16]}\n"
    )
    code, out, _ = cli("validate", str(bad))
    assert code == 1
    assert out == (
        'invalid: CIDR "10.1.0.0/16" in pool "b" overlaps with already defined CIDR "10.0.0.0/8"\n'
    )


def test_validate_names_services_that_would_lose_their_ip(tmp_path: Path) -> None:
    shrunk = tmp_path / "config.yaml"
    shrunk.write_text(
        "address-pools:\n- {name: default, protocol: layer2, addresses: [10.206.65.240/28]}\n"
    )
    services = tmp_path / "svc.yaml"
    services.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {namespace: web, name: www}\n"
        "spec: {type: LoadBalancer, clusterIP: 10.96.0.3, ports: [{port: 80}]}\n"
        "status: {loadBalancer: {ingress: [{ip: 10.206.65.234}]}}\n"
    )
    code, out, _ = cli("validate", str(shrunk), "--services", str(services))
    assert code == 1
    assert out.splitlines()[1].startswith("would change: web/www: 10.206.65.234 -> 10.206.65.240")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "No such file or directory"),
        ("a: [unclosed", "not valid YAML"),
        ('{"kind": ', "not valid JSON"),
        ("kind: Pod\napiVersion: v1\n", "no Service, ConfigMap or MetalLB configuration"),
        ("address-pools: [{name: a}]\n", "invalid config: parsing address pool #1: "),
    ],
)
def test_bad_config_file_is_one_line_and_exit_status_2(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / ("c.json" if content and content.startswith("{") else "c.yaml")
    if content is not None:
        path.write_text(content)
    code, out, err = cli("plan", str(path), STEPS[0])
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"metallb-core: {path}: ")
    assert problem in err


def test_services_file_without_services_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    code, _, err = cli("plan", CONFIG, str(path))
    assert (code, err) == (
        2,
        f"metallb-core: {path}: no Service, ConfigMap or MetalLB configuration object found\n",
    )


def test_module_entry_point_runs_as_a_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "metallb_core", "plan", CONFIG, STEPS[0]],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0
    assert "10.206.65.234" in proc.stdout


def test_module_entry_point_never_prints_a_traceback_for_a_bad_file() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "metallb_core", "explain", "/nonexistent", "x", "a/b"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr == "metallb-core: /nonexistent: No such file or directory\n"


def test_explain_says_a_service_of_another_class_is_not_handled(tmp_path: Path) -> None:
    services = tmp_path / "svc.yaml"
    services.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {namespace: web, name: www}\n"
        "spec: {type: LoadBalancer, clusterIP: 10.96.0.3, loadBalancerClass: other,"
        " ports: [{port: 80}]}\n"
    )
    code, out, _ = cli("explain", CONFIG, str(services), "web/www")
    assert code == 0
    assert "loadBalancerClass other: not handled by a controller for no loadBalancerClass" in out
    assert "result" not in out
    code, out, _ = cli("explain", CONFIG, str(services), "web/www", "--lb-class", "other")
    assert "result: 10.206.65.234 from pool default" in out
