"""The layout of tests/ and benchmarks/: real packages, imported by one name each.

A test directory without ``__init__.py`` is put on ``sys.path`` by pytest and its modules
become top-level names (``l2lab``, or a package ``kubernetes`` shadowing the official
client); a ``sys.path`` edit does the same by hand. Neither is allowed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATH_EDITS = ("sys.path." + "insert", "sys.path." + "append")  # so as not to match itself


def _python_dirs(top: Path) -> list[Path]:
    return sorted({path.parent for path in top.rglob("*.py") if "__pycache__" not in path.parts})


@pytest.mark.parametrize("top", ["tests", "benchmarks"])
def test_every_directory_of_python_files_is_a_package(top: str) -> None:
    lacking = [d for d in _python_dirs(REPO / top) if not (d / "__init__.py").is_file()]
    assert lacking == []


@pytest.mark.parametrize("top", ["tests", "benchmarks"])
def test_nothing_edits_sys_path(top: str) -> None:
    editing = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / top).rglob("*.py"))
        if any(edit in path.read_text() for edit in PATH_EDITS)
    ]
    assert editing == []


def test_collection_does_not_depend_on_a_package_named_kubernetes(tmp_path: Path) -> None:
    """With a top-level ``kubernetes`` package imported before pytest starts (as the official
    client would be), the adapter's tests still collect, every one of them."""
    fake = tmp_path / "kubernetes"
    fake.mkdir()
    (fake / "__init__.py").write_text("OFFICIAL_CLIENT = True\n")
    (tmp_path / "sitecustomize.py").write_text("import kubernetes\n")

    def collected(extra_path: str) -> list[str]:
        env = {**os.environ, "PYTHONPATH": extra_path}
        collect = ["--collect-only", "-q", "-p", "no:cacheprovider", "tests/adapter"]
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *collect],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return [line for line in done.stdout.splitlines() if "::" in line]

    shadowed = collected(str(tmp_path))
    assert shadowed == collected("")
    assert len(shadowed) > 100
