"""The documentation's examples run, and print and answer what the documentation says.

Two kinds of examples are checked, so that the docs cannot rot:

- ```` ```python ```` blocks of README.md and the core's pages in docs/. Each block runs on its
  own, in a fresh namespace. Each ``print(...)`` call states the line it prints as a
  trailing comment (``print(x)   # 10.0.0.0``), or says ``# output below``: then what it
  prints (several lines, say in a loop) is the next ```` ```text ```` block after the Python
  block. The block's output must be exactly that, in order. A ``print`` without such a
  comment fails the test: the docs show no unchecked output.
- ```` ```console ```` blocks of docs/cli.md: ``$ command`` lines followed by the output they
  print (stdout and stderr). ``$ echo $?`` prints the exit status of the command before it.
  ``metallb-core`` commands run in-process; other commands (``sed``, globs, redirections)
  run in bash.
  They run in a scratch directory holding ``examples/`` and the files of the page's
  ```` ```yaml ```` blocks whose first line is ``# file: <name>``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import tokenize
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from metallb_core._cli import run

ROOT = Path(__file__).resolve().parent.parent
PYTHON_PAGES = [
    ROOT / "README.md",
    ROOT / "docs" / "index.md",
    ROOT / "docs" / "concepts.md",
    ROOT / "docs" / "api.md",
    ROOT / "docs" / "annotations.md",
    ROOT / "docs" / "events.md",
]
CLI_PAGE = ROOT / "docs" / "cli.md"
_FENCE = re.compile(r"^```(?P<lang>[a-z]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
_FILE_MARK = re.compile(r"^# file: (?P<name>[\w.-]+)\n")


@dataclass(frozen=True)
class Block:
    """One fenced block of a page, with the ```text blocks that follow it (before the next
    block of its own language)."""

    page: Path
    line: int
    lang: str
    body: str
    outputs: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def fenced_blocks(page: Path, lang: str) -> list[Block]:
    """The fenced blocks of ``page`` in language ``lang``, with the line each starts on."""
    if not page.exists():
        return []
    text = page.read_text(encoding="utf-8")
    found: list[Block] = []
    outputs: list[str] = []
    for m in _FENCE.finditer(text):
        if m["lang"] == lang:
            if found:
                found[-1] = replace(found[-1], outputs=tuple(outputs))
            outputs = []
            found.append(Block(page, text.count("\n", 0, m.start()) + 1, m["lang"], m["body"]))
        elif m["lang"] == "text":
            outputs.append(m["body"])
    if found:
        found[-1] = replace(found[-1], outputs=tuple(outputs))
    return found


# -- python blocks -------------------------------------------------------------------------------

OUTPUT_BELOW = "output below"


def expected_output(block: Block) -> list[str]:
    """The lines a block says it prints, from the comments of its ``print`` calls, in order.

    A one-line comment is the line that ``print`` prints, once; ``# output below`` stands for
    the next unused ```text block after the Python block.
    """
    comments = {
        tok.start[0]: tok.string
        for tok in tokenize.generate_tokens(io.StringIO(block.body).readline)
        if tok.type == tokenize.COMMENT
    }
    calls = sorted(
        (node.lineno, node.col_offset, node.end_lineno or node.lineno)
        for node in ast.walk(ast.parse(block.body))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    )
    outputs = list(block.outputs)
    expected: list[str] = []
    for _, _, end in calls:
        comment = comments.get(end)
        assert comment is not None, f"line {end}: print() without its expected output"
        shown = comment.removeprefix("#").strip()
        if shown == OUTPUT_BELOW:
            assert outputs, f"line {end}: no ```text block after the example"
            expected.extend(outputs.pop(0).splitlines())
        else:
            expected.append(shown)
    return expected


PYTHON_BLOCKS = [b for page in PYTHON_PAGES for b in fenced_blocks(page, "python")]


def test_docs_have_python_examples() -> None:
    assert len(PYTHON_BLOCKS) >= 10


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_python_example_prints_what_it_says(block: Block) -> None:
    expected = expected_output(block)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.body, block.id, "exec"), {"__name__": "__docs__"})
    assert out.getvalue().splitlines() == expected


# -- console blocks --------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One ``$ command`` of a console block and the output shown after it."""

    line: str
    output: str


def commands(body: str) -> list[Command]:
    """The commands of a console block, each with the lines shown under it."""
    out: list[Command] = []
    current: str | None = None
    shown: list[str] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            if current is not None:
                out.append(Command(current, "\n".join(shown)))
            current, shown = line[2:], []
        else:
            shown.append(line)
    if current is not None:
        out.append(Command(current, "\n".join(shown)))
    return out


def normalised(text: str) -> str:
    """Output as compared: trailing spaces and trailing blank lines do not count."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


CLI_BLOCKS = fenced_blocks(CLI_PAGE, "console")


def test_cli_page_has_console_examples() -> None:
    assert len(CLI_BLOCKS) >= 5


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with ``examples/`` and the page's ``# file:`` YAML blocks."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    for block in fenced_blocks(CLI_PAGE, "yaml"):
        mark = _FILE_MARK.match(block.body)
        if mark:
            (tmp_path / mark["name"]).write_text(block.body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


_SHELL = re.compile(r"[*?|<>;&$`]")


def run_command(line: str, cwd: Path) -> tuple[int, str]:
    """Run one documented command; returns its exit status and its output.

    A plain ``metallb-core`` command runs in-process; anything else (or a command line with
    globs, pipes or redirections) runs in bash, where ``metallb-core`` is this checkout's.
    """
    argv = shlex.split(line)
    if argv[0] == "metallb-core" and not _SHELL.search(line):
        out, err = io.StringIO(), io.StringIO()
        status = run(argv[1:], out, err)
        return status, out.getvalue() + err.getvalue()
    script = f'metallb-core() {{ "{sys.executable}" -m metallb_core "$@"; }}\n{line}\n'
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("block", CLI_BLOCKS, ids=lambda b: b.id)
def test_cli_example_shows_real_output(block: Block, scratch: Path) -> None:
    status = 0
    for command in commands(block.body):
        if command.line == "echo $?":
            shown = str(status)
        else:
            status, shown = run_command(command.line, scratch)
        assert normalised(shown) == normalised(command.output), command.line
