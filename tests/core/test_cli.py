"""The ``metallb-core`` command line, on good and bad files, in-process and as a process."""

from __future__ import annotations

import argparse
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


@pytest.mark.parametrize("command", ["plan", "explain"])
def test_configurations_without_services_are_an_error(command: str) -> None:
    argv = [command, CONFIG, CONFIG] + (["default/x"] if command == "explain" else [])
    assert cli(*argv) == (
        2,
        "",
        f"metallb-core: {CONFIG}: no Services: give a file with Service objects\n",
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


# -- never a traceback ---------------------------------------------------------------------------

BAD_SERVICES = [
    pytest.param("ports: [80]", "spec.ports[0] must be an object, not 80", id="ports"),
    pytest.param(
        'clusterIPs: "10.96.0.5"',
        'spec.clusterIPs must be a list, not "10.96.0.5"',
        id="clusterIPs",
    ),
    pytest.param(
        "ports: [{port: http}]",
        'spec.ports[0].port must be an integer, not "http"',
        id="port name",
    ),
    pytest.param(
        "selector: {app: [a]}",
        'spec.selector["app"] must be a string, not ["a"]',
        id="selector",
    ),
]


def bad_service(tmp_path: Path, spec_line: str = "", meta: str = "") -> Path:
    path = tmp_path / "svc.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Service\n"
        f"metadata: {{name: www, namespace: web{meta}}}\n"
        f"spec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.5\n  {spec_line}\n"
    )
    return path


@pytest.mark.parametrize(("spec_line", "problem"), BAD_SERVICES)
@pytest.mark.parametrize("command", ["plan", "explain", "validate"])
def test_a_malformed_service_is_one_line_naming_the_file_service_and_field(
    tmp_path: Path, spec_line: str, problem: str, command: str
) -> None:
    path = bad_service(tmp_path, spec_line)
    argv = {
        "plan": ["plan", CONFIG, str(path)],
        "explain": ["explain", CONFIG, str(path), "web/www"],
        "validate": ["validate", CONFIG, "--services", str(path)],
    }[command]
    code, out, err = cli(*argv)
    assert (code, out) == (2, "") if command != "validate" else code == 2
    assert err == f"metallb-core: {path}: Service web/www: {problem}\n"


def test_annotations_as_a_list_are_named(tmp_path: Path) -> None:
    path = bad_service(tmp_path, meta=", annotations: [a, b]")
    code, _, err = cli("plan", CONFIG, str(path))
    assert (code, err) == (
        2,
        f"metallb-core: {path}: Service web/www: "
        'metadata.annotations must be an object, not ["a", "b"]\n',
    )


def test_whatever_the_core_raises_names_the_file_and_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Service the core cannot handle (however well formed it looks to the CLI) is reported
    with its file and key, exit status 2, not a traceback."""
    import metallb_core as core
    from metallb_core import _cli

    def fragile(state: core.State, service: dict[str, Any], **kw: Any) -> object:
        if service["metadata"]["name"] == "nginx-manual":
            raise AttributeError("'int' object has no attribute 'get'")
        return core.converge(state, service, **kw)

    def fragile_all(state: core.State, services: list[dict[str, Any]], **kw: Any) -> object:
        for svc in services:
            fragile(state, svc, **kw)
        return core.converge_all(state, services, **kw)

    monkeypatch.setattr(_cli, "converge", fragile)
    monkeypatch.setattr(_cli, "converge_all", fragile_all)
    code, out, err = cli("plan", *STEPS)
    assert (code, out) == (2, "")
    assert err == (
        f"metallb-core: {STEPS[1]}: Service without-istio/nginx-manual cannot be handled: "
        "AttributeError: 'int' object has no attribute 'get'\n"
    )


def test_an_unexpected_error_is_one_line_with_exit_status_3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from metallb_core import _cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(_cli, "print_plan", broken)
    code, out, err = cli("plan", *STEPS)
    assert (code, out, err) == (
        3,
        "",
        "metallb-core: internal error, please report it: RuntimeError: boom\n",
    )


def test_a_closed_pipe_ends_plan_quietly(tmp_path: Path) -> None:
    """``plan ... | head -1`` with more output than a pipe buffers: no BrokenPipeError."""
    errors = tmp_path / "stderr"
    many = " ".join(STEPS * 60)
    script = (
        f'PYTHONPATH="{ROOT}" "{sys.executable}" -m metallb_core plan {many} 2>"{errors}"'
        " | head -1; echo ${PIPESTATUS[0]}"
    )
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout == f"== step 1: {STEPS[0]}\n141\n"
    assert errors.read_text() == ""


def test_yaml_errors_give_line_column_and_document(tmp_path: Path) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text("kind: Service\nmetadata: {name: a}\n---\nkind: Service\nmetadata: {name: [b\n")
    code, _, err = cli("plan", CONFIG, str(path))
    assert code == 2
    # The problem's wording is libyaml's or PyYAML's (whichever parser reads the file); the
    # place, the document and the context are ours.
    where = f"metallb-core: {path}: not valid YAML: line 6, column 1 (document 2): "
    assert err.startswith(where)
    assert "expected ',' or ']'" in err
    assert err.endswith(" (while parsing a flow sequence at line 5, column 18)\n")
    assert err.count("\n") == 1


def test_a_broken_config_text_is_blamed_not_the_configmap_around_it(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(
        "# the ConfigMap\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: metallb-system, name: config}\n"
        "data:\n  config: |\n    address-pools:\n    - name: default\n"
        "      addresses: 10.0.0.0/8\n      protocol: layer2: x\n"
    )
    code, _, err = cli("plan", str(path), STEPS[0])
    assert code == 2
    # The problem's wording is libyaml's or PyYAML's; the place in the config text and in
    # the file is ours.
    assert err.startswith(
        f"metallb-core: {path}: ConfigMap metallb-system/config: data.config is not valid YAML:"
        " line 4, column 19 (line 10 of the file): mapping values are not allowed"
    )
    assert err.count("\n") == 1


def test_version_is_the_packages() -> None:
    import tomllib

    import metallb_core

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert metallb_core.__version__ == project["version"]
    assert cli("--version") == (0, f"metallb-core {project['version']}\n", "")


def test_every_command_and_option_has_a_description_and_help() -> None:
    from metallb_core._cli import _parser

    parser = _parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert parser.description
    assert set(commands.choices) >= {"plan", "explain", "validate"}
    helps = {c.dest: c.help for c in commands._choices_actions}
    for name, sub in commands.choices.items():
        assert sub.description, name
        assert helps.get(name), name
        for action in sub._actions:
            assert action.help, f"{name} {action.dest}"


def test_a_command_line_mistake_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "metallb_core", "plan", "--output", "xml", "a"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "metallb-core plan: argument --output: invalid choice: 'xml' (choose from 'table',"
        " 'json') (see metallb-core plan --help)\n"
    )


# -- explain on a pending Service ---------------------------------------------------------------


def test_explain_names_who_holds_the_pools_addresses_and_the_fixes() -> None:
    code, out, _ = cli("explain", *STEPS, "default/nginx-manual-2")
    assert code == 0
    holders = out.split("who holds the addresses of pool expensive:\n")[1].split("  to fix")[0]
    assert [line.split() for line in holders.splitlines()] == [
        ["10.206.65.224", "without-istio/nginx-expensive"],
        ["10.206.65.225", "without-istio/nginx-manual"],
    ]
    fixes = out.split("  to fix it:\n")[1]
    assert "widen pool expensive: add addresses to it in the ConfigMap's address-pools" in fixes
    assert "the same metallb.universe.tf/allow-shared-ip value" in fixes
    assert (
        "drop the metallb.universe.tf/address-pool annotation: pool default would give it"
        " 10.206.65.235" in fixes
    )


def test_explain_names_the_stable_keys_under_crds(tmp_path: Path) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n"
        "metadata: {name: small, namespace: metallb-system}\n"
        "spec: {addresses: [192.0.2.0/32]}\n"
    )
    services = tmp_path / "svc.yaml"
    services.write_text(
        "".join(
            f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: web,"
            f' creationTimestamp: "2024-01-01T00:0{i}:00Z"}}\n'
            "spec: {type: LoadBalancer, clusterIP: 10.96.0.9, ports: [{port: 80}]}\n"
            for i in range(2)
        )
    )
    code, out, _ = cli("explain", str(pools), str(services), "web/s1")
    assert code == 0
    assert "      192.0.2.0   web/s0\n" in out
    assert "widen pool small: add addresses to IPAddressPool small's spec.addresses" in out
    assert "the same metallb.io/allow-shared-ip value" in out
    assert "drop the" not in out


def test_explain_suggests_namespace_slash_name_for_a_bare_name() -> None:
    code, out, err = cli("explain", *STEPS, "nginx-manual-2")
    assert (code, out) == (2, "")
    assert err == (
        "metallb-core: nginx-manual-2: give the Service as NAMESPACE/NAME:"
        " did you mean default/nginx-manual-2?\n"
    )


def test_explain_suggests_the_namespace_that_has_the_name() -> None:
    code, _, err = cli("explain", *STEPS, "default/nginx-manual")
    assert code == 2
    assert err == (
        f"metallb-core: default/nginx-manual: no such Service in {STEPS[-1]};"
        " did you mean without-istio/nginx-manual?\n"
    )
