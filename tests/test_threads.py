"""The CLI's torch thread count: --threads, $STEERLAB_THREADS, $OMP_NUM_THREADS, default."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import make_model
from steerlab.cli import app
from steerlab.data import builtin_pairs
from steerlab.errors import SpecError
from steerlab.extract import extract
from steerlab.threads import (
    MAX_DEFAULT_THREADS,
    available_cpus,
    choose_threads,
    default_threads,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("STEERLAB_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    threads, source = choose_threads()
    assert source == "default" and threads == default_threads()
    assert 1 <= threads <= min(available_cpus(), MAX_DEFAULT_THREADS)
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")  # OpenMP's nested list: the first level
    assert choose_threads() == (3, "$OMP_NUM_THREADS")
    monkeypatch.setenv("STEERLAB_THREADS", "2")
    assert choose_threads() == (2, "$STEERLAB_THREADS")
    assert choose_threads(" 5 ") == (5, "--threads")


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", ""])
def test_bad_values_name_their_source(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    with pytest.raises(SpecError, match="--threads"):
        choose_threads(value)
    if value.strip():
        monkeypatch.setenv("STEERLAB_THREADS", value)
        with pytest.raises(SpecError, match=r"\$STEERLAB_THREADS"):
            choose_threads()


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tokenizer = make_model("llama", layers=2)
    vector = extract(model, tokenizer, builtin_pairs("happy_sad", limit=4), "mean_diff", "all")
    return vector.save(tmp_path_factory.mktemp("threads") / "v.safetensors")


def test_cli_sets_torch_threads(monkeypatch: pytest.MonkeyPatch, vector_file: Path) -> None:
    runner = CliRunner()
    torch.set_num_threads(2)
    result = runner.invoke(app, ["--threads", "1", "info", str(vector_file)])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    monkeypatch.setenv("STEERLAB_THREADS", "2")
    assert runner.invoke(app, ["info", str(vector_file)]).exit_code == 0
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize(
    "args,env,needle",
    [
        (["--threads", "0"], None, "--threads '0' must be at least 1"),
        (["--threads", "many"], None, "--threads 'many' is not a whole number"),
        ([], "x", "$STEERLAB_THREADS 'x' is not a whole number"),
    ],
)
def test_cli_bad_threads_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    vector_file: Path,
    args: list[str],
    env: str | None,
    needle: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("STEERLAB_THREADS", env)
    result = CliRunner().invoke(app, [*args, "info", str(vector_file)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output


def test_default_is_the_usable_cpus_whatever_the_load() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # a competing process keeps a core busy
        assert default_threads() == min(available_cpus(), MAX_DEFAULT_THREADS)
    finally:
        busy.kill()
        busy.wait()
