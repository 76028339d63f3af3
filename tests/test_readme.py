"""The README's commands, read as a user pastes them: every ``harmowam`` line parses, every config and path it
names exists. (Running them all takes hours; the slow tests run the main ones.)"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from conftest import REPO

from harmowam.cli import build_parser


def readme_commands() -> list[tuple[Path, list[str]]]:
    """(working folder, argv) of each command line in the README's bash blocks, ``cd`` followed."""
    text = (REPO / "README.md").read_text()
    commands, cwd = [], REPO
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if not argv:
                continue
            if argv[0] == "cd":
                cwd = Path(os.path.normpath(cwd / argv[1]))  # the folder need not exist here
                continue
            commands.append((cwd, argv))
    return commands


def test_the_readme_has_its_two_set_up_commands_and_the_test_command():
    argvs = [argv for _, argv in readme_commands()]
    assert argvs[0] == ["bash", ".ci/setup"]
    assert ["bash", ".ci/setup"] in argvs and [".venv/bin/harmowam", "pipeline", "--preset", "quick"] in argvs
    assert [".venv/bin/python", "-m", "pytest", "-q"] in argvs


@pytest.mark.parametrize("cwd,argv", [c for c in readme_commands() if Path(c[1][0]).name == "harmowam"],
                         ids=lambda c: " ".join(c)[:60] if isinstance(c, list) else "")
def test_harmowam_commands_in_the_readme_parse(cwd, argv):
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        pytest.fail(f"README: `{shlex.join(argv)}` does not parse (exit {exc.code})")


def test_configs_and_inputs_named_in_the_readme_exist():
    for cwd, argv in readme_commands():
        tool = Path(argv[0]).name
        if tool == "lightning":
            config = argv[argv.index("-c") + 1]
            assert Path(os.path.normpath(cwd / config)).is_file(), f"README: no config {config} (run in {cwd})"
        if tool == "harmowam" and argv[1:3] == ["data", "import-lerobot"]:
            assert (cwd / argv[3]).is_dir(), f"README: no dataset {argv[3]}"
        if argv[0].startswith((".venv", "../")):
            assert Path(os.path.normpath(cwd / argv[0])).parent == REPO / ".venv" / "bin", \
                f"README: {argv[0]} run in {cwd} is not the environment's command"
