"""The app (:mod:`steerlab.cli.app`): its commands, its entry points, and the package's shape."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from cli_helpers import invoke

from steerlab.provenance import library_version

CLI_DIR = Path(__file__).resolve().parents[2] / "src" / "steerlab" / "cli"
# Every command module and the command functions it defines.
COMMAND_MODULES = {
    "vectors": ("extract", "info", "diff", "compare"),
    "generation": ("generate",),
    "evaluation": ("sweep", "matrix", "eval_models"),
    "calibration": ("calibrate",),
    "training": ("finetune", "tune"),
    "datasets": ("qa", "pairs"),
    "demo": ("demo",),
    "exporting": ("export_gguf", "import_gguf"),
    "folding": ("fold",),
}
TOP_COMMANDS = (
    "calibrate",
    "extract",
    "info",
    "generate",
    "sweep",
    "diff",
    "compare",
    "matrix",
    "demo",
    "dataset",
    "finetune",
    "tune",
    "eval",
    "export",
    "import",
    "fold",
)


def test_version() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"steerlab {library_version()}"


def test_no_args_shows_help() -> None:
    result = invoke([])
    assert "extract" in result.output
    assert "generate" in result.output


def test_help_lists_every_command() -> None:
    result = invoke(["--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ")}
    assert set(TOP_COMMANDS) <= listed, listed
    dataset = invoke(["dataset", "--help"])
    assert dataset.exit_code == 0, dataset.output
    assert "qa" in dataset.stdout and "pairs" in dataset.stdout


@pytest.mark.parametrize(
    "command", [*TOP_COMMANDS, "dataset qa", "dataset pairs", "export gguf", "import gguf"]
)
def test_every_command_has_help(command: str) -> None:
    result = invoke([*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_both_entry_points_are_the_same_app() -> None:
    import steerlab.cli as package

    module = importlib.import_module("steerlab.cli.app")
    assert isinstance(package.app, typer.Typer)
    assert package.app is module.app
    assert package.main is module.main


# -- the package's shape: leaf modules, no cycle, nothing imports the CLI -------------------


def _steerlab_imports(path: Path) -> set[str]:
    """Every ``steerlab...`` module that ``path`` imports (at the top or in a function)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "steerlab"}


@pytest.mark.parametrize("module", list(COMMAND_MODULES))
def test_command_modules_import_only_common_and_the_library(module: str) -> None:
    imported = _steerlab_imports(CLI_DIR / f"{module}.py")
    cli = {name for name in imported if name.startswith("steerlab.cli")}
    assert {name.split(".")[2] for name in cli} <= {"common"}, cli


@pytest.mark.parametrize("module", list(COMMAND_MODULES))
def test_each_command_module_imports_without_the_others(module: str) -> None:
    # The package's __init__ imports the app (and so every module): stand in an empty
    # package so that only the module itself and what it imports are loaded.
    code = f"""
import sys, types
package = types.ModuleType("steerlab.cli")
package.__path__ = [{str(CLI_DIR)!r}]
sys.modules["steerlab.cli"] = package
import steerlab.cli.{module} as module
others = {[*sorted(set(COMMAND_MODULES) - {module}), "app"]!r}
loaded = [name for name in others if "steerlab.cli." + name in sys.modules]
assert not loaded, loaded
names = {COMMAND_MODULES[module]!r}
assert all(callable(getattr(module, name, None)) for name in names), names
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_nothing_outside_the_cli_imports_it() -> None:
    src = CLI_DIR.parent
    # The experiment runner runs each stage as its steerlab command (one implementation):
    # it sits beside the CLI at the top (pyproject's import-linter layers "cli : runner").
    shims = {"__main__.py"}
    runner = {Path("runner/commands.py")}
    offenders = [
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if CLI_DIR not in path.parents
        and path.name not in shims
        and path.relative_to(src) not in runner
        and any(name.startswith("steerlab.cli") for name in _steerlab_imports(path))
    ]
    assert offenders == []
