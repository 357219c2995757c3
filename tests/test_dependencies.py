"""Dependencies as imported: every third-party module the code, the tests and the benchmarks
import belongs to a distribution that pyproject.toml declares for them."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

from tests.core.test_purity import CLI_FILES

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"metallb_core", "announcers", "tests", "benchmarks"}
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
#: Imported directly but pinned by a declared distribution: declaring them too would fight
#: that pin (pydantic requires one exact pydantic-core).
COMES_WITH = {"pydantic-core": "pydantic"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*extras: str) -> set[str]:
    requirements = list(PROJECT["dependencies"])
    for extra in extras:
        requirements += PROJECT["optional-dependencies"][extra]
    names = {_canonical(re.match(r"[A-Za-z0-9._-]+", r).group(0)) for r in requirements}  # type: ignore[union-attr]
    return names | {extra for extra, pinner in COMES_WITH.items() if pinner in names}


def _imports(paths: list[Path]) -> set[str]:
    """Every absolute module name imported by ``paths``, third-party only."""
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return {
        name
        for name in found
        if name.split(".")[0] not in FIRST_PARTY | set(sys.stdlib_module_names)
    }


@cache
def _distribution_of(module: str) -> str:
    """The distribution installing ``module`` (the one owning its file when several share
    the top-level package, as lightkube and lightkube-models do)."""
    candidates = metadata.packages_distributions().get(module.split(".", maxsplit=1)[0], [])
    assert candidates, f"{module} is installed by no distribution"
    if len(set(candidates)) == 1:
        return _canonical(candidates[0])
    spec = importlib.util.find_spec(module)
    assert spec is not None, module
    assert spec.origin is not None, module
    origin = Path(spec.origin).resolve()
    for name in set(candidates):
        dist = metadata.distribution(name)
        if any(Path(str(dist.locate_file(f))).resolve() == origin for f in dist.files or ()):
            return _canonical(name)
    raise AssertionError(f"no distribution owns {origin}")


def _python_files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (REPO / top).rglob("*.py"))


@pytest.mark.parametrize(
    ("where", "extras"),
    [
        (("metallb_core",), ("cli",)),
        (("announcers",), ("kubernetes",)),
        (("tests", "benchmarks"), ("test",)),
    ],
    ids=["core", "adapters", "tests"],
)
def test_every_import_is_declared(where: tuple[str, ...], extras: tuple[str, ...]) -> None:
    declared = _declared(*extras)
    missing = sorted(
        f"{module} ({_distribution_of(module)})"
        for module in _imports(_python_files(*where))
        if _distribution_of(module) not in declared
    )
    assert missing == []


def test_the_core_alone_needs_only_pydantic() -> None:
    """Outside its command line (the modules test_purity allows PyYAML), the core imports the
    standard library and pydantic only."""
    files = [p for p in _python_files("metallb_core") if p.name not in CLI_FILES]
    assert {_distribution_of(m) for m in _imports(files)} <= _declared()
