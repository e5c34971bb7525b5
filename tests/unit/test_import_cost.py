"""What importing eco-rails costs: the policy schema, the package itself and the CLI's help load neither
torch nor NeMo Guardrails; and `import eco_rails` still registers the `eco` engine with NeMo Guardrails,
whichever of the two is imported first. Each check runs in a fresh interpreter so the import order is known."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("torch", "nemoguardrails")
ABSENT = "import sys; heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'nemoguardrails'}); assert not heavy, heavy"


def python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("module", ["eco_rails.policy", "eco_rails", "eco_rails.engine.corruption", "eco_rails.cli.app"])
def test_importing_loads_neither_torch_nor_nemoguardrails(module):
    run = python("-c", f"import {module}\n{ABSENT}")
    assert run.returncode == 0, run.stderr[-2000:]


def test_cli_help_and_policy_schema_load_neither_torch_nor_nemoguardrails():
    script = "\n".join([
        "import json",
        "from typer.testing import CliRunner",
        "from eco_rails.policy import policy_json_schema",
        "from eco_rails.cli.app import app",
        "runner = CliRunner()",
        "help_ = runner.invoke(app, ['--help'])",
        "assert help_.exit_code == 0 and 'policy-schema' in help_.output, help_.output",
        "schema = runner.invoke(app, ['policy-schema'])",
        "assert schema.exit_code == 0, schema.output",
        "assert json.loads(schema.output) == policy_json_schema()",
        ABSENT,
    ])
    run = python("-c", script)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.parametrize("args", [["--help"], ["policy-schema"]])
def test_python_m_cli_imports_neither_torch_nor_nemoguardrails(args):
    run = python("-X", "importtime", "-m", "eco_rails.cli", *args)
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "eco_rails.cli.app" in imported, "precondition: -X importtime lists the imports"
    assert not sorted(m for m in imported if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize("order", ["eco_rails first", "nemoguardrails first"])
def test_import_eco_rails_registers_the_eco_engine_with_nemoguardrails(order):
    imports = ["import eco_rails", "import nemoguardrails"]
    if order == "nemoguardrails first":
        imports.reverse()
    script = "\n".join([
        *imports,
        "from nemoguardrails.llm.frameworks import get_framework",
        "names = get_framework('default').get_provider_names()",
        "assert 'eco' in names, names",
    ])
    run = python("-c", script)
    assert run.returncode == 0, run.stderr[-2000:]
