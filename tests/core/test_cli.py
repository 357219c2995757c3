"""The ``metallb-core`` command line, on good and bad files, in-process and as a process."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

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


def json_plan(*argv: str) -> list[dict[str, object]]:
    code, out, _ = cli("plan", *argv, "--output", "json")
    assert code == 0
    steps: list[dict[str, object]] = json.loads(out)["steps"]
    return steps


def external(step: dict[str, object]) -> dict[str, list[str]]:
    rows = step["services"]
    assert isinstance(rows, list)
    return {f"{r['namespace']}/{r['name']}": r["externalIPs"] for r in rows}


def test_plan_walks_the_seed_through_all_five_steps() -> None:
    steps = json_plan(CONFIG, *STEPS)
    assert [external(s) for s in steps] == [
        {"default/nginx-manual": ["10.206.65.224"], "without-istio/nginx": ["10.206.65.234"]},
        {"default/nginx-manual": ["10.206.65.225"], "without-istio/nginx": ["10.206.65.234"]},
        {
            "default/nginx-expensive-2": ["10.206.65.224"],
            "default/nginx-manual": ["10.206.65.225"],
            "without-istio/nginx": ["10.206.65.234"],
        },
        {
            "default/nginx-expensive-2": ["10.206.65.224"],
            "default/nginx-expensive-3": [],
            "default/nginx-manual": ["10.206.65.225"],
            "without-istio/nginx": ["10.206.65.234"],
        },
        {
            "default/nginx-expensive-2": ["10.206.65.224"],
            "default/nginx-expensive-3": ["10.206.65.225"],
            "without-istio/nginx": ["10.206.65.234"],
        },
    ]


def test_plan_table_shows_pending_and_the_warning_event() -> None:
    code, out, _ = cli("plan", CONFIG, str(SEED / "step-4.yaml"))
    assert code == 0
    pending = [line for line in out.splitlines() if "nginx-expensive-3" in line]
    assert pending[0].split() == [
        "default",
        "nginx-expensive-3",
        "LoadBalancer",
        "<pending>",
        "<none>",
    ]
    assert re.search(
        r"Warning +AllocationFailed +Failed to allocate IP for \"default/nginx-expensive-3\": "
        r"no available IPs in pool expensive",
        out,
    )


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
    code, out, _ = cli("explain", CONFIG, str(SEED / "step-4.yaml"), "default/nginx-expensive-3")
    assert code == 0
    assert "path: requested pool expensive" in out
    assert "not requested (the Service asks for pool expensive)" in out
    assert "exhausted" in out
    assert "result: <pending>: no available IPs in pool expensive" in out


def test_explain_says_auto_assign_off_pools_are_skipped() -> None:
    code, out, _ = cli("explain", CONFIG, str(SEED / "step-1.yaml"), "without-istio/nginx")
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
        ("kind: Pod\napiVersion: v1\n", "no ConfigMap, MetalLB config document"),
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
    assert (code, err) == (2, f"metallb-core: {path}: no Service objects found\n")


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
