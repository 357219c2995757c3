"""``python -m announcers.kubernetes`` on a Python without the ``kubernetes`` extra: one line
naming the extra to install, exit status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .controller_kit import REPO

#: Installed first thing by the interpreter (``sitecustomize``): makes ``MODULE`` unimportable,
#: as on a machine where the extra was never installed.
_BLOCKER = """
import os, sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == os.environ["BLOCKED_MODULE"]:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.mark.parametrize("module", ["lightkube", "httpx2", "prometheus_client"])
@pytest.mark.parametrize("args", [["--help"], ["controller"]], ids=["help", "controller"])
def test_without_the_extra_it_names_the_extra(tmp_path: Path, module: str, args: list[str]) -> None:
    (tmp_path / "sitecustomize.py").write_text(_BLOCKER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", "BLOCKED_MODULE": module}
    done = subprocess.run(
        [sys.executable, "-m", "announcers.kubernetes", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"No module named '{module}'" in lines[0]
    assert "pip install 'metallb-core[kubernetes]'" in lines[0]


def test_the_blocker_blocks(tmp_path: Path) -> None:
    """The check above is not vacuous: the blocker does make the module unimportable."""
    (tmp_path / "sitecustomize.py").write_text(_BLOCKER)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "BLOCKED_MODULE": "lightkube"}
    done = subprocess.run(
        [sys.executable, "-c", "import lightkube"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "No module named 'lightkube'" in done.stderr
