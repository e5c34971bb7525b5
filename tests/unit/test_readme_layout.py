"""README's Layout section matches the tree: every folder of the package is listed, every file named exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def layout_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_every_package_folder_is_in_the_layout():
    block = layout_block()
    folders = sorted(p.name for p in (REPO / "eco_rails").iterdir() if p.is_dir() and (p / "__init__.py").exists())
    missing = [f for f in folders if not re.search(rf"\b{re.escape(f)}/", block)]
    assert not missing, f"README Layout does not list eco_rails/{missing}"


def test_every_file_the_layout_names_exists():
    block = layout_block()
    named = set(re.findall(r"(?<![\w.-])([\w.-]+\.(?:py|co|sh))\b", block))
    present = {p.name for p in REPO.rglob("*") if ".venv" not in p.parts and p.is_file()}
    missing = sorted(n for n in named if n not in present)
    assert named and not missing, f"README Layout names files that do not exist: {missing}"


def _bash_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_every_file_and_config_a_readme_command_names_exists_in_a_clone():
    """A command that points outside the repository (e.g. at ../shared/) fails for every new user."""
    named = []
    for block in _bash_blocks():
        for flag, value in re.findall(r"(--data|--config)\s+(\S+)", block):
            path = value.split(":")[0]
            if "<" in path or path.startswith(("$", "~")):
                continue
            named.append(path)
            assert not path.startswith("../"), f"{flag} {value}: outside the repository"
            assert (REPO / path).exists(), f"{flag} {value}: no such file or folder in the repository"
    assert len(named) >= 5, named


def _eco_rails_commands() -> list[list[str]]:
    """Every `eco-rails ...` command in README's bash blocks, continuation lines joined, comments dropped."""
    import shlex

    commands = []
    for block in _bash_blocks():
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("#"):
                continue
            for part in re.split(r"\s*&&\s*", line):
                words = shlex.split(part) if part else []
                if words and words[0].endswith("eco-rails"):
                    commands.append(words[1:])
    return commands


def test_every_eco_rails_command_in_readme_uses_a_real_subcommand_and_real_options():
    """A renamed option or subcommand breaks a README command for every reader; the CLI's own parser says."""
    import typer.main

    from eco_rails.cli.app import app

    group = typer.main.get_command(app)
    commands = _eco_rails_commands()
    assert len(commands) >= 10, commands
    global_opts = {opt for param in group.params for opt in (*param.opts, *param.secondary_opts)}
    for words in commands:
        while words and words[0] in global_opts:
            words = words[1:]
        sub = words[0]
        assert sub in group.commands, f"README runs `eco-rails {sub}`, which is not a subcommand"
        known = {opt for param in group.commands[sub].params for opt in (*param.opts, *param.secondary_opts)}
        used = {w.split("=", 1)[0] for w in words[1:] if w.startswith("-")}
        assert used <= known, f"README runs `eco-rails {' '.join(words)}` with unknown options {sorted(used - known)}"
