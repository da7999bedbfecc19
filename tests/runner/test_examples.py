"""The shipped experiment specs (``examples/``): each validates and plans offline, the GPU-scale
ones state their cost, and every local data file a spec names exists.

Planning only reads the spec and hashes local data files, so these tests are fast and must
not touch the network or load a model (checked: both are made to fail loudly).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from steerlab.cli.app import app
from steerlab.runner import plan_experiment

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "src" / "steerlab" / "examples"
SPECS = sorted(EXAMPLES.glob("*.yaml"))
SHARED_DATA = REPO.parent / "shared" / "data"

# The examples at the scale of the original studies; the others are miniatures on the
# embedded model (``default``) that the demo and CI run.
GPU_SCALE = ("representation-tuning", "vectors-from-finetuning", "tradeoff")


def spec_id(path: Path) -> str:
    return path.stem


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network and no model loading: either raises at once."""

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"planning a spec used the network: {args!r}")

    def no_model(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"planning a spec loaded a model: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer, PreTrainedModel

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(no_model))
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", no_model)
    import steerlab.models

    monkeypatch.setattr(steerlab.models, "load_model", no_model)


def test_the_offline_guard_refuses_network_and_models(offline: None) -> None:
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("huggingface.co", 443))
    import steerlab.models

    with pytest.raises(AssertionError, match="loaded a model"):
        steerlab.models.load_model("default")


def test_the_examples_folder_is_the_package_folder() -> None:
    assert (REPO / "examples").resolve() == EXAMPLES.resolve()
    assert set(GPU_SCALE) <= {path.stem for path in SPECS}
    assert "demo" in {path.stem for path in SPECS}


def test_the_readme_lists_every_spec() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for path in SPECS:
        assert f"`{path.name}`" in readme, f"examples/README.md does not list {path.name}"


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_spec_validates_and_plans(path: Path, offline: None) -> None:
    plan = plan_experiment(path)
    assert plan.stages, f"{path.name} has no stages"
    names = [node.name for node in plan.stages]
    assert len(set(names)) == len(names)
    for node in plan.stages:
        assert re.fullmatch(r"[0-9a-f]{64}", node.key)


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_dry_run_lists_every_stage_as_will_run(path: Path, tmp_path: Path, offline: None) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", str(path), "-o", str(out), "--dry-run"], env={"COLUMNS": "240"}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for node in plan_experiment(path).stages:
        row = [line for line in lines if re.search(rf"\b{re.escape(node.name)}\b", line)]
        assert any("will run" in line for line in row), f"{node.name}:\n{result.output}"
    assert not out.exists(), "a dry run wrote the run folder"
    if path.stem in GPU_SCALE:
        assert "expected cost: about" in result.output


@pytest.mark.parametrize("name", GPU_SCALE)
def test_gpu_scale_spec_states_its_cost(name: str) -> None:
    plan = plan_experiment(EXAMPLES / f"{name}.yaml")
    cost = plan.spec.cost
    assert cost is not None, f"{name}.yaml has no cost:"
    assert cost.hours > 0 and cost.memory_gb > 0
    assert cost.basis and "estimate" in cost.basis.lower()
    for entry in plan.models.values():  # a real model on an accelerator, in bfloat16
        assert entry.source != "default" and entry.dtype == "bfloat16"
        assert entry.device == "cuda"


def local_paths(value: Any) -> list[str]:
    """The parts of a setting that name a local file or folder (``../...`` or ``./...``):
    the whole text, or what follows ``NAME=`` and ``KIND:`` (``x=caa:../data/f.json``)."""
    found = []
    for text in value if isinstance(value, list) else [value]:
        if not isinstance(text, str):
            continue
        for candidate in (text, text.split("=", 1)[-1], text.split(":", 1)[-1]):
            if candidate.startswith(("../", "./")) and candidate not in found:
                found.append(candidate)
    return found


def test_local_paths_finds_the_data_part() -> None:
    assert local_paths("x=caa:../d/f.json") == ["../d/f.json"]
    assert local_paths(["mmlu:./a.csv", "builtin:facts", "cais/mmlu:anatomy"]) == ["./a.csv"]
    assert local_paths(3) == []


@pytest.mark.parametrize("path", SPECS, ids=spec_id)
def test_every_local_data_path_exists(path: Path) -> None:
    plan = plan_experiment(path)
    named = [
        (node.name, key, part)
        for node in plan.stages
        for key, value in node.settings.items()
        for part in local_paths(value)
    ]
    if any("shared/data" in part for _, _, part in named) and not SHARED_DATA.is_dir():
        pytest.skip(
            f"{SHARED_DATA} is missing: the public data sets lie in ../shared/data beside the "
            "clone in CI and on developer machines, not in the repository"
        )
    missing = [
        f"{stage}.{key}: {part}"
        for stage, key, part in named
        if not (plan.base_dir / part).exists()
    ]
    assert not missing, f"{path.name}: missing data: {missing}"


@pytest.mark.parametrize("name", GPU_SCALE)
def test_gpu_scale_spec_reads_its_data_from_shared_data(name: str) -> None:
    plan = plan_experiment(EXAMPLES / f"{name}.yaml")
    parts = [
        part
        for node in plan.stages
        for value in node.settings.values()
        for part in local_paths(value)
    ]
    assert parts, f"{name}.yaml names no local data"
    for part in parts:  # one data folder per spec: shared/data beside the clone
        assert (plan.base_dir / part).resolve().is_relative_to(SHARED_DATA.resolve()), part
