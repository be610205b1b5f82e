"""The README and docs show commands and code a user copies: each flag they name must exist, each
name the Python example imports must be there, and the option table must list every `run` option."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import click
import pytest

from filmcolor.cli import main
from filmcolor.config import SETTING_NOTES

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _command_lines() -> list[tuple[str, str, list[str]]]:
    """(file, line, flags) of every example line that calls a filmcolor command."""
    found = []
    for doc in DOCS:
        for line in doc.read_text(encoding="utf-8").splitlines():
            m = re.match(r"^\s*(?:python -m filmcolor|filmcolor|torchrun .*-m filmcolor) (\w+)\b(.*)$", line)
            if m and m.group(1) in main.commands:
                words = m.group(2).split("#")[0].split()
                found.append((doc.name, line.strip(), [m.group(1)] + [w.split("=")[0] for w in words
                                                                      if w.startswith("-") and w != "-"]))
    return found


def _options(command: click.Command) -> set[str]:
    names = {"-h", "--help"}
    for p in command.params:
        if isinstance(p, click.Option):
            names |= set(p.opts) | set(p.secondary_opts)
    return names


def test_every_flag_a_doc_example_gives_exists():
    lines = _command_lines()
    assert len(lines) > 40  # the examples were found
    for doc, line, (command, *flags) in lines:
        unknown = [f for f in flags if f not in _options(main.commands[command])]
        assert not unknown, f"{doc}: `{line}` gives {unknown}, which `filmcolor {command}` does not take"


def test_the_run_option_table_lists_every_run_option_and_the_settings_table_every_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_cells = [line.split("|")[1] for line in readme.splitlines() if line.startswith("| `-")]
    listed = {flag for cell in first_cells for flag in re.findall(r"--?[a-z][a-z-]*", cell)}
    run_options = _options(main.commands["run"]) - {"-h", "--help", "--no-deflicker"}
    assert run_options <= listed, sorted(run_options - listed)
    settings = set(re.findall(r"^\| `([a-z_]+)` \|", readme, flags=re.M))
    assert set(SETTING_NOTES) <= settings, sorted(set(SETTING_NOTES) - settings)


@pytest.mark.parametrize("doc", ["README.md"])
def test_the_python_example_imports_what_it_uses(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    imports = [line for block in blocks for line in block.splitlines() if line.startswith("from filmcolor")]
    assert imports
    for line in imports:
        module, names = re.match(r"from (\S+) import (.+)$", line.split("#")[0].strip()).groups()
        loaded = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(loaded, name), f"{doc}: `{line}`: {module} has no {name}"
