"""metallb_core is pure: it imports only the standard library and pydantic, and does no I/O.

docs/design/core-api.md: "The core imports only the standard library and pydantic. It performs no
I/O,
reads no clock, no environment, no randomness". Two independent checks enforce it:

- **Source**: every module is parsed with :mod:`ast`; its imports, the builtins it names and
  the dotted names it reads (``os.environ``, ``datetime.datetime.now``, ...) are checked.
- **Runtime**: in a fresh interpreter, ``__import__`` refuses the I/O modules to any importer
  inside the package, and the I/O functions (``open``, ``print``, ``time.time``,
  ``random.random``, ``socket.socket``, ``os.getenv``, ``datetime.datetime.now``, ...) raise
  when called from it; then every module is imported and the public API is exercised.

The CLI modules (``metallb_core/_cli.py``, ``metallb_core/__main__.py``) are the only ones
allowed to do I/O, and the package's ``__init__`` must never import them. Both checkers are
themselves tested on small bad sources and packages, so a checker that sees nothing fails.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import metallb_core

PACKAGE = "metallb_core"
PACKAGE_DIR = Path(metallb_core.__file__).resolve().parent
ROOT = PACKAGE_DIR.parent

CLI_FILES = frozenset({"_cli.py", "__main__.py", "_yaml.py", "_convert_cli.py"})
"""The only modules allowed to do I/O (they may not exist yet); ``_yaml.py`` does none, but
imports PyYAML (the ``cli`` extra) lazily for the CLI and the Kubernetes adapter."""

THIRD_PARTY = frozenset({"pydantic", "pydantic_core"})
"""Allowed outside the standard library: pydantic (pydantic_core is its compiled half)."""

IO_MODULES = frozenset(
    {
        # processes, threads, signals, the OS
        "_thread", "asyncio", "concurrent", "multiprocessing", "os", "posix", "nt", "pty",
        "resource", "sched", "signal", "subprocess", "threading", "fcntl", "termios", "tty",
        "pwd", "grp", "getpass", "platform", "sysconfig", "site", "ctypes", "mmap",
        # files
        "_io", "io", "pathlib", "shutil", "tempfile", "glob", "fileinput", "filecmp", "tarfile",
        "zipfile", "shelve", "dbm", "sqlite3", "logging", "syslog",
        # network
        "socket", "ssl", "select", "selectors", "socketserver", "http", "urllib", "ftplib",
        "smtplib", "poplib", "imaplib", "xmlrpc", "webbrowser",
        # clocks, randomness, the local time zone and locale
        "time", "random", "secrets", "uuid", "zoneinfo", "locale",
        # ways around the checks
        "builtins", "importlib",
    }
)  # fmt: skip
"""Standard-library modules the core may not import, even though they are standard."""

IO_NAMES = frozenset(
    {
        "sys.stdin", "sys.stdout", "sys.stderr", "sys.argv", "sys.exit", "sys.modules",
        "sys.settrace", "sys.setprofile", "datetime.datetime.now", "datetime.datetime.utcnow",
        "datetime.datetime.today", "datetime.datetime.fromtimestamp", "datetime.date.today",
        "datetime.date.fromtimestamp",
    }
)  # fmt: skip
"""Dotted names of allowed modules that read the world (reading them at all is refused)."""

IO_BUILTINS = frozenset(
    {"open", "print", "input", "breakpoint", "exec", "eval", "compile", "__import__", "exit",
     "quit", "help"}
)  # fmt: skip
"""Builtins that do I/O or run code the checks cannot see."""


def core_files() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def is_cli(path: Path) -> bool:
    return path.parent == PACKAGE_DIR and path.name in CLI_FILES


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


PURE_FILES = [p for p in core_files() if not is_cli(p)]
PURE_IDS = [str(p.relative_to(ROOT)) for p in PURE_FILES]


# ---- the source check ---------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str, str]]:
    """``(line, imported dotted name, local alias)`` for every import in the tree."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.partition(".")[0]
                bound = alias.name if alias.asname else local
                yield node.lineno, alias.name, f"{local}={bound}"
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, module, is_package)
            for alias in node.names:
                local = alias.asname or alias.name
                yield node.lineno, f"{source}.{alias.name}", f"{local}={source}.{alias.name}"


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``, or None for anything but a chain of names."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _is_under(name: str, prefixes: Iterable[str]) -> str | None:
    return next((p for p in prefixes if name == p or name.startswith(p + ".")), None)


def _import_problem(name: str, allowed_roots: set[str], cli_modules: set[str]) -> str | None:
    """Why importing ``name`` breaks the purity rules, or None."""
    root = name.partition(".")[0]
    if root == "__future__":
        return None
    if root not in allowed_roots:
        return "not the standard library or pydantic"
    if root in IO_MODULES:
        return "an I/O module"
    if _is_under(name, IO_NAMES):
        return "reads the world"
    if _is_under(name, cli_modules):
        return "the CLI"
    return None


def source_findings(source: str, module: str, is_package: bool = False) -> list[Finding]:
    """Everything in ``source`` (the module ``module``) that breaks the purity rules."""
    tree = ast.parse(source)
    findings: list[Finding] = []
    aliases: dict[str, str] = {}
    allowed_roots = set(sys.stdlib_module_names) | THIRD_PARTY | {PACKAGE}
    cli_modules = {f"{PACKAGE}.{name.removesuffix('.py')}" for name in CLI_FILES}
    for line, name, binding in _imports(tree, module, is_package):
        local, _, bound = binding.partition("=")
        aliases[local] = bound
        problem = _import_problem(name, allowed_roots, cli_modules)
        if problem is not None:
            findings.append(Finding(line, f"imports {name}: {problem}"))
    # Loads only: the outermost node of each chain is checked once, with aliases resolved.
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            inner.add(id(node.value))
    for node in ast.walk(tree):
        if id(node) in inner or not isinstance(node, (ast.Attribute, ast.Name)):
            continue
        parts = _dotted(node)
        if parts is None:
            continue
        if len(parts) == 1 and parts[0] in IO_BUILTINS and parts[0] not in aliases:
            findings.append(Finding(node.lineno, f"uses the builtin {parts[0]}"))
            continue
        full = ".".join([aliases.get(parts[0], parts[0]), *parts[1:]])
        hit = _is_under(full, IO_NAMES)
        if hit is not None and (parts[0] in aliases):
            findings.append(Finding(node.lineno, f"reads {hit}"))
    return sorted(set(findings), key=lambda f: (f.line, f.what))


def findings_of(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    return [str(f) for f in source_findings(source, module_name(path), path.name == "__init__.py")]


def test_the_package_has_modules_to_check() -> None:
    assert (PACKAGE_DIR / "__init__.py") in PURE_FILES
    assert len(PURE_FILES) > 5


@pytest.mark.parametrize("path", PURE_FILES, ids=PURE_IDS)
def test_core_module_imports_nothing_but_pure_standard_library_and_pydantic(path: Path) -> None:
    assert [f for f in findings_of(path) if "imports" in f] == []


@pytest.mark.parametrize("path", PURE_FILES, ids=PURE_IDS)
def test_core_module_calls_no_io_builtin_and_reads_no_clock_or_stream(path: Path) -> None:
    assert [f for f in findings_of(path) if "imports" not in f] == []


def test_package_init_never_imports_the_cli_modules() -> None:
    tree = ast.parse((PACKAGE_DIR / "__init__.py").read_text(encoding="utf-8"))
    imported = {name for _, name, _ in _imports(tree, PACKAGE, is_package=True)}
    cli = {f"{PACKAGE}.{name.removesuffix('.py')}" for name in CLI_FILES}
    assert {name for name in imported if _is_under(name, cli)} == set()


BAD_SOURCES = [
    pytest.param("import socket", "imports socket", id="socket"),
    pytest.param("import subprocess as sp", "imports subprocess", id="subprocess"),
    pytest.param("from os import environ", "imports os.environ", id="os.environ import"),
    pytest.param("import os.path", "imports os.path", id="os.path"),
    pytest.param("import time", "imports time", id="time"),
    pytest.param("from random import choice", "imports random.choice", id="random"),
    pytest.param("import threading", "imports threading", id="threading"),
    pytest.param("import importlib", "imports importlib", id="importlib"),
    pytest.param("import yaml", "imports yaml: not the standard library", id="third party"),
    pytest.param("from . import _cli", "imports metallb_core._cli", id="relative CLI"),
    pytest.param("from ._cli import main", "imports metallb_core._cli.main", id="CLI function"),
    pytest.param("import metallb_core.__main__", "imports metallb_core.__main__", id="__main__"),
    pytest.param("from sys import stdout", "imports sys.stdout", id="sys.stdout import"),
    pytest.param("import sys\nsys.stdout.write('x')", "reads sys.stdout", id="sys.stdout"),
    pytest.param("import sys as s\nprint(s.argv)", "reads sys.argv", id="sys.argv alias"),
    pytest.param(
        "from datetime import datetime\nx = datetime.now()",
        "reads datetime.datetime.now",
        id="datetime.now",
    ),
    pytest.param(
        "import datetime as dt\nx = dt.date.today()", "reads datetime.date.today", id="date.today"
    ),
    pytest.param("f = open('x')", "uses the builtin open", id="open"),
    pytest.param("def f():\n    print('x')", "uses the builtin print", id="print"),
    pytest.param("x = input()", "uses the builtin input", id="input"),
    pytest.param("m = __import__('socket')", "uses the builtin __import__", id="__import__"),
    pytest.param("eval('1')", "uses the builtin eval", id="eval"),
]


@pytest.mark.parametrize(("source", "finding"), BAD_SOURCES)
def test_source_check_flags_impure_code(source: str, finding: str) -> None:
    found = [str(f) for f in source_findings(source, f"{PACKAGE}._example")]
    assert any(finding in f for f in found), found


def test_source_check_accepts_pure_code() -> None:
    source = textwrap.dedent(
        """
        from __future__ import annotations
        import bisect, hashlib, ipaddress, sys
        from collections.abc import Mapping
        from datetime import timedelta
        from pydantic import BaseModel
        from pydantic_core import core_schema
        from metallb_core._model import Model
        from . import _state
        LIMIT = sys.maxsize
        def names(labels: Mapping[str, str]) -> list[str]:
            return sorted(labels)
        """
    )
    assert source_findings(source, f"{PACKAGE}._example") == []


# ---- the runtime check: a fresh interpreter with I/O blocked ------------------------------

GUARD = r"""
import builtins, datetime, importlib, importlib.util, io, json, os, random, secrets, socket
import subprocess, sys, threading, time, traceback, uuid

root, package, pure, blocked, workload = sys.argv[1:6]
pure, blocked = json.loads(pure), set(json.loads(blocked))
assert sys.path[0] == "", sys.path  # -c without -P: the working directory, ``root``, first
report = {"violations": [], "imported": [], "errors": [], "cli_loaded_by_package": None}
assert not any(m == package or m.startswith(package + ".") for m in sys.modules)
import pydantic, pydantic_core  # loaded unguarded: only the package is under test
allowed = set(sys.stdlib_module_names) | {"pydantic", "pydantic_core", package}
cli = {package + "._cli", package + ".__main__"}
skip = {"__main__", "_collections_abc", "collections.abc", "os"}


def in_core(name):
    return (name == package or name.startswith(package + ".")) and name not in cli


def caller_in_core():
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") in skip:
        frame = frame.f_back
    return frame is not None and in_core(frame.f_globals.get("__name__", ""))


class Blocked(Exception):
    pass


def refuse(what):
    report["violations"].append(what)
    raise Blocked(what)


real_import = builtins.__import__


def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if in_core(importer):
        if level:
            base = globals.get("__package__") or importer.rpartition(".")[0]
            target = importlib.util.resolve_name("." * level + name, base)
        else:
            target = name
        root_name = target.partition(".")[0]
        if root_name in blocked or root_name not in allowed:
            refuse(importer + " imports " + target)
        for item in [target, *[target + "." + f for f in (fromlist or ())]]:
            if item in cli:
                refuse(importer + " imports " + item)
    return real_import(name, globals, locals, fromlist, level)


def guard(owner, attribute, label):
    original = getattr(owner, attribute)

    def guarded(*args, **kwargs):
        if caller_in_core():
            refuse("calls " + label)
        return original(*args, **kwargs)

    setattr(owner, attribute, guarded)


class Environ(dict):
    def __getitem__(self, key):
        if caller_in_core():
            refuse("reads os.environ")
        return os.__dict__["_real_environ"][key]

    def get(self, key, default=None):
        if caller_in_core():
            refuse("reads os.environ")
        return os.__dict__["_real_environ"].get(key, default)


class GuardedDateTime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        if caller_in_core():
            refuse("calls datetime.now")
        return super().now(tz)

    @classmethod
    def utcnow(cls):
        if caller_in_core():
            refuse("calls datetime.utcnow")
        return super().utcnow()

    @classmethod
    def today(cls):
        if caller_in_core():
            refuse("calls datetime.today")
        return super().today()


class GuardedDate(datetime.date):
    @classmethod
    def today(cls):
        if caller_in_core():
            refuse("calls date.today")
        return super().today()


for owner, names in [
    (builtins, ["open", "print", "input", "breakpoint", "exec", "eval", "compile"]),
    (io, ["open", "open_code"]),
    (os, ["getenv", "putenv", "system", "popen", "urandom", "listdir", "scandir", "open",
          "remove", "unlink", "mkdir", "getcwd", "stat"]),
    (time, ["time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns",
            "process_time", "sleep", "localtime", "gmtime", "ctime", "strftime"]),
    (random, ["random", "randint", "randrange", "choice", "choices", "shuffle", "sample",
              "uniform", "getrandbits", "randbytes", "seed"]),
    (secrets, ["token_bytes", "token_hex", "token_urlsafe", "choice", "randbelow"]),
    (socket, ["socket", "create_connection", "getaddrinfo", "gethostname", "gethostbyname"]),
    (subprocess, ["run", "Popen", "call", "check_call", "check_output"]),
    (threading, ["Thread", "Timer"]),
    (uuid, ["uuid1", "uuid4"]),
]:
    for attribute in names:
        guard(owner, attribute, owner.__name__ + "." + attribute)
os._real_environ = os.environ
os.environ = Environ()
datetime.datetime = GuardedDateTime
datetime.date = GuardedDate
builtins.__import__ = guarded_import

try:
    importlib.import_module(package)
    report["cli_loaded_by_package"] = sorted(m for m in cli if m in sys.modules)
    for name in pure:
        try:
            importlib.import_module(name)
            report["imported"].append(name)
        except Blocked:
            pass
        except Exception:
            report["errors"].append(name + ": " + traceback.format_exc(limit=3))
    exec(workload, {"__name__": "__main__"})
except Blocked:
    pass
except Exception:
    report["errors"].append("workload: " + traceback.format_exc())
finally:
    builtins.__import__ = real_import
    sys.__stdout__.write("\n" + json.dumps(report) + "\n")
"""


def run_guarded(root: Path, package: str, pure: Iterable[str], workload: str) -> dict[str, Any]:
    """Import ``pure`` modules of ``package`` (under ``root``) with I/O blocked, then run
    ``workload``; return the report (violations, modules imported, errors)."""
    result = subprocess.run(
        [
            sys.executable,
            "-E",  # isolated from the environment (PYTHONPATH, ...) and the user's site, but
            "-s",  # not -I: -I implies -P, and the package is found in the working directory
            "-B",
            "-c",
            GUARD,
            str(root),
            package,
            json.dumps(sorted(pure)),
            json.dumps(sorted(IO_MODULES)),
            textwrap.dedent(workload),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


CORE_WORKLOAD = """
    import metallb_core as core

    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "default", "namespace": "metallb-system"},
            "spec": {"addresses": ["10.0.0.0/30", "1000::/126", "10.0.1.1 - 10.0.1.3"],
                     "avoidBuggyIPs": True,
                     "serviceAllocation": {"priority": 1, "namespaces": ["web"],
                                           "namespaceSelectors": [{"matchLabels": {"a": "b"}}]}}}
    spare = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
             "metadata": {"name": "spare", "namespace": "metallb-system"},
             "spec": {"addresses": ["10.9.0.0/24"], "autoAssign": False}}
    l2 = {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
          "metadata": {"name": "l2", "namespace": "metallb-system"},
          "spec": {"ipAddressPoolSelectors": [{"matchLabels": {"x": "y"}}]}}
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "web", "labels": {"a": "b"}}}
    config = core.parse_resources([pool, spare, l2, namespace])
    core.parse_configmap({"address-pools": [{"name": "p", "protocol": "layer2",
                                             "addresses": ["10.8.0.0/24"]}]})

    def service(name, **spec):
        return {"metadata": {"name": name, "namespace": "web",
                             "annotations": {"metallb.universe.tf/allow-shared-ip": "k"}},
                "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.1", "fd00::1"],
                         "ipFamilyPolicy": "PreferDualStack",
                         "ports": [{"port": 80, "protocol": "TCP"}], **spec}}

    services = [service("a"), service("b", ports=[{"port": 443}]),
                service("c", loadBalancerIP="10.9.0.7", clusterIPs=["10.96.0.2"],
                        ipFamilyPolicy="SingleStack"),
                {**service("d"), "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.3"}]}}}]
    state, results = core.converge_all(core.State.empty(config), services)
    state, _ = core.converge(state, service("e", externalTrafficPolicy="Local",
                                            selector={"app": "e"}))
    request = core.request_from_service(service("f"))
    state, _ = core.allocate(state, request)
    state, _ = core.allocate(state, core.ServiceRequest(key="web/g", requested_pool="nope"))
    core.pool_usage(state)
    core.orphans(state, core.Config())
    state, _ = core.reload(state, core.Config(pools=[core.Pool(name="n", cidrs=["10.0.0.0/30"],
                                                               exclude=["10.0.0.1"])]))
    state = core.release(state, "web/a")
    core.announcing_node("10.0.0.1", ["n1", "n2", "n3"])
    nodes = [core.NodeFacts.from_node({"metadata": {"name": n, "labels": {"zone": n}},
                                       "status": {"conditions": []}}, speaker_alive=True)
             for n in ("n1", "n2")]
    slices = [{"metadata": {"labels": {"kubernetes.io/service-name": "e"}},
               "endpoints": [{"nodeName": "n2", "conditions": {"ready": True}}]}]
    for svc in services:
        written = {**svc, "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.3"}]}}}
        core.elect(config, written, nodes, core.ServiceEndpoints.from_slices(slices))
    for bad in (lambda: core.Pool(name="x", cidrs=["abc"]),
                lambda: core.request_from_service(service("h", loadBalancerIP="nope"))):
        try:
            bad()
        except ValueError:
            pass
"""


@pytest.fixture(scope="module")
def core_report() -> dict[str, Any]:
    return run_guarded(ROOT, PACKAGE, [module_name(p) for p in PURE_FILES], CORE_WORKLOAD)


def test_every_core_module_imports_with_io_blocked(core_report: Mapping[str, Any]) -> None:
    assert core_report["errors"] == []
    assert sorted(core_report["imported"]) == sorted(module_name(p) for p in PURE_FILES)


def test_core_does_no_io_while_importing_and_working(core_report: Mapping[str, Any]) -> None:
    assert core_report["errors"] == []
    assert core_report["violations"] == []


def test_importing_the_package_loads_no_cli_module(core_report: Mapping[str, Any]) -> None:
    assert core_report["cli_loaded_by_package"] == []


def fake_package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    """A package ``fakecore`` under ``tmp_path`` with the given modules."""
    package = tmp_path / "fakecore"
    package.mkdir()
    for name, source in {"__init__.py": "", **files}.items():
        (package / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("files", "workload", "violation"),
    [
        pytest.param(
            {"net.py": "import socket\n"}, "", "fakecore.net imports socket", id="socket import"
        ),
        pytest.param(
            {"env.py": "from os import environ\n"}, "", "fakecore.env imports os", id="os import"
        ),
        pytest.param(
            {"ext.py": "import yaml\n"}, "", "fakecore.ext imports yaml", id="third party"
        ),
        pytest.param(
            {"clock.py": "import datetime\ndef stamp():\n    return datetime.datetime.now()\n"},
            "import fakecore.clock\nfakecore.clock.stamp()",
            "calls datetime.now",
            id="datetime.now at runtime",
        ),
        pytest.param(
            {"shout.py": "def shout():\n    print('hello')\n"},
            "import fakecore.shout\nfakecore.shout.shout()",
            "calls builtins.print",
            id="print at runtime",
        ),
        pytest.param(
            {"read.py": "def read():\n    return open('/dev/null').read()\n"},
            "import fakecore.read\nfakecore.read.read()",
            "calls builtins.open",
            id="open at runtime",
        ),
        pytest.param(
            {"uses_cli.py": "from . import _cli\n", "_cli.py": "import socket\n"},
            "",
            "fakecore.uses_cli imports fakecore._cli",
            id="module importing the CLI",
        ),
    ],
)
def test_runtime_check_catches_impure_modules(
    tmp_path: Path, files: dict[str, str], workload: str, violation: str
) -> None:
    root = fake_package(tmp_path, files)
    pure = ["fakecore"] + [f"fakecore.{n[:-3]}" for n in files if n not in CLI_FILES]
    report = run_guarded(root, "fakecore", pure, workload)
    assert violation in report["violations"], report


def test_runtime_check_lets_the_cli_do_io_unless_the_package_imports_it(tmp_path: Path) -> None:
    root = fake_package(tmp_path, {"_cli.py": "import socket\nprint('cli')\n"})
    quiet = run_guarded(root, "fakecore", ["fakecore"], "import fakecore._cli")
    (root / "fakecore" / "__init__.py").write_text("from . import _cli\n", encoding="utf-8")
    loud = run_guarded(root, "fakecore", ["fakecore"], "")
    assert (quiet["violations"], quiet["cli_loaded_by_package"]) == ([], [])
    assert "fakecore imports fakecore._cli" in loud["violations"]
