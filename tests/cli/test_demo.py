"""``steerlab demo`` (:mod:`steerlab.cli.demo` over :func:`steerlab.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import invoke


def test_demo_dry_run_plans_the_builtin_spec(tmp_path: Path) -> None:
    result = invoke(["demo", "--dry-run", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    for stage in ("mood", "mood_tradeoff", "deception_vectors", "honesty_suite"):
        assert stage in result.stdout
    assert not (tmp_path / "out").exists()


def test_the_builtin_demo_is_examples_demo_yaml() -> None:
    from steerlab.runner.run import spec_file

    repository = Path(__file__).resolve().parents[2]
    assert (
        spec_file("builtin:demo").read_bytes() == (repository / "examples/demo.yaml").read_bytes()
    )


def test_the_demo_module_does_not_import_the_cli() -> None:
    import ast

    import steerlab.demo

    tree = ast.parse(Path(steerlab.demo.__file__).read_text(encoding="utf-8"))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in modules if m and m.startswith("steerlab.cli")}
