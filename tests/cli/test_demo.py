"""``steerlab demo`` (:mod:`steerlab.cli.demo` over :func:`steerlab.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_helpers import invoke


def test_demo_passes_its_options_to_run_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("steerlab.demo.run_demo", lambda **kwargs: calls.append(kwargs))
    args = ["demo", "--coefficient", "0.2", "--layers", "3-5", "--max-new-tokens", "7"]
    result = invoke([*args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    [call] = calls
    assert call["model"] == "default" and call["output"] == tmp_path / "out"
    assert (call["coefficient"], call["layers"], call["max_new_tokens"]) == (0.2, "3-5", 7)


def test_the_demo_module_does_not_import_the_cli() -> None:
    import ast

    import steerlab.demo

    tree = ast.parse(Path(steerlab.demo.__file__).read_text(encoding="utf-8"))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in modules if m and m.startswith("steerlab.cli")}


@pytest.mark.slow
def test_demo_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = invoke(["demo", "--max-new-tokens", "8", "-o", str(out)])
    assert result.exit_code == 0, result.output
    for name in (
        "happy_sad.safetensors",
        "sweep/results.jsonl",
        "sweep/fit.json",
        "model_diff.safetensors",
        "compare/cosine.csv",
        "honesty.safetensors",
        "eval/results.jsonl",
    ):
        assert (out / name).is_file(), name
    assert "behaviour fit" in result.stdout
    assert "done in" in result.stdout
