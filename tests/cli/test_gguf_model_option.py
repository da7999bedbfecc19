"""``--model FILE.gguf`` on the CLI: extract, generate and finetune from a GGUF model file,
and one-line refusals that leave no output and nothing in the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, extract_args, invoke, write_pairs

from conftest import make_model
from steerlab.cli.common import model_reference
from steerlab.models import load_model, model_identity
from steerlab.vector import SteeringVector
from tiny_gguf import write_bare_gguf, write_tiny_gguf

CHAT = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello there."}]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny llama as GGUF, a pairs file, and a cache folder shared by this module."""
    root = tmp_path_factory.mktemp("gguf-cli")
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    return {
        "gguf": write_tiny_gguf(model, tokenizer, root / "tiny.gguf"),
        "pairs": write_pairs(root / "pairs.jsonl"),
        "cache": root / "cache",
    }


@pytest.fixture
def env(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("STEERLAB_CACHE", str(files["cache"]))  # for load_model in the test too
    return {"STEERLAB_CACHE": str(files["cache"])}


def test_extract_then_generate_from_a_gguf_file(
    files: dict[str, Path], env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "v.safetensors"
    result = invoke(extract_args(files["gguf"], files["pairs"], out), env=env)
    assert result.exit_code == 0, result.output
    meta = SteeringVector.load(out).metadata
    assert meta.model_id == str(files["gguf"].resolve())  # the file, not the cache folder
    assert (meta.model_type, meta.hidden_size, meta.num_layers) == ("llama", 32, 3)
    steered = ["generate", "--model", str(files["gguf"]), "--vector", str(out)]
    for args in (
        ["generate", "--model", str(files["gguf"]), "--max-new-tokens", "3", "Hi?"],
        [*steered, "--coefficients", "2", "--layers", "1", "--max-new-tokens", "3", "Hi?"],
    ):
        result = invoke(args, env=env)
        assert result.exit_code == 0, result.output
    assert len(list((files["cache"] / "models").iterdir())) == 1  # converted once


def test_finetune_run_records_the_gguf_file_as_its_base(
    files: dict[str, Path], env: dict[str, str], tmp_path: Path
) -> None:
    chats = tmp_path / "chats.json"
    chats.write_text(json.dumps([CHAT] * 4), encoding="utf-8")
    run = tmp_path / "run"
    args = ["finetune", "-m", str(files["gguf"]), "-d", str(chats), "--max-steps", "1"]
    result = invoke([*args, "--eval-fraction", "0", "-o", str(run)], env=env)
    assert result.exit_code == 0, result.output
    adapter = json.loads((run / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(files["gguf"].resolve())
    model, _ = load_model(str(run))  # the adapter on its GGUF base, from any folder
    assert model_identity(model).num_layers == 3


def test_model_reference_records_a_gguf_file_absolutely(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(files["gguf"].parent)
    assert model_reference("tiny.gguf") == str(files["gguf"].resolve())
    assert model_reference("default") == "default"


@pytest.mark.parametrize(
    "name,needle",
    [
        ("missing.gguf", "no such GGUF model file"),
        ("fake.gguf", "not a GGUF file"),
        ("rwkv.gguf", "cannot read GGUF models of architecture 'rwkv7'"),
        ("vector.gguf", "a GGUF control vector, not a model"),
    ],
)
def test_bad_gguf_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, needle: str
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("STEERLAB_CACHE", str(cache))
    path = tmp_path / name
    if name == "fake.gguf":
        path.write_text("not a model")
    elif name == "rwkv.gguf":
        write_bare_gguf(path, "rwkv7")
    elif name == "vector.gguf":
        write_bare_gguf(path, "controlvector", controlvector__layer_count=3)
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "v.safetensors"
    result = invoke(extract_args(path, pairs, out), env={"STEERLAB_CACHE": str(cache)})
    assert_one_line_error(result, str(path), needle)
    result = invoke(["generate", "--model", str(path), "Hi?"], env={"STEERLAB_CACHE": str(cache)})
    assert_one_line_error(result, str(path), needle)
    assert not out.exists() and not cache.exists()


def test_help_names_gguf_files() -> None:
    result = invoke(["extract", "--help"], env={"COLUMNS": "240", "TERMINAL_WIDTH": "240"})
    assert result.exit_code == 0
    assert "GGUF model file" in " ".join(result.stdout.split())
