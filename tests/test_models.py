"""Model references: paths, Hub ids, and failing fast (one line) without network."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import make_model
from steerlab.errors import ModelLoadError
from steerlab.models import (
    check_model_reference,
    hub_reachable,
    is_hub_id,
    load_model,
    looks_like_path,
)

MADE_UP = "steerlab-tests/no-such-model-3f9a2c"
PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "name,path_like,hub_id",
    [
        ("./nomodel", True, False),
        ("../runs/x", True, False),
        ("/abs/model", True, False),
        ("~/models/x", True, False),
        ("runs/a/b", True, False),
        ("model.safetensors", True, True),
        ("tiny.gguf", True, True),
        ("runs\\win", True, False),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", False, True),
        ("Qwen/Qwen2.5-0.5B", False, True),
        ("gpt2", False, True),
        ("my model", False, False),
        ("org/-bad", False, False),
        ("org/a--b", False, False),
    ],
)
def test_path_or_hub_id(name: str, path_like: bool, hub_id: bool) -> None:
    assert looks_like_path(name) is path_like
    assert is_hub_id(name) is hub_id


@pytest.mark.parametrize("name", ["./nomodel", "../nomodel", "runs/x/y", "weights.safetensors"])
def test_missing_path_says_no_folder_and_not_a_hub_id(name: str) -> None:
    for call in (load_model, check_model_reference):
        with pytest.raises(ModelLoadError) as info:
            call(name)
        message = str(info.value)
        assert message.startswith(f"{name}: no such model folder")
        assert "Hub id" in message and "\n" not in message
        assert "alphanumeric" not in message


def test_invalid_hub_id() -> None:
    with pytest.raises(ModelLoadError, match="not a valid Hugging Face Hub id"):
        load_model("my model")


def test_folder_checks(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json or adapter_config\.json"):
        check_model_reference(str(tmp_path))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="not a model folder"):
        check_model_reference(str(tmp_path / "file.txt"))
    model, tokenizer = make_model("llama", layers=2)
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    check_model_reference(str(tmp_path / "tiny"))
    loaded, _ = load_model(str(tmp_path / "tiny"))
    assert loaded.config.num_hidden_layers == 2


def test_made_up_hub_id_offline_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for call in (check_model_reference, load_model):
        start = time.monotonic()
        with pytest.raises(ModelLoadError) as info:
            call(MADE_UP)
        assert time.monotonic() - start < 10
        message = str(info.value)
        assert message.startswith(f"{MADE_UP}: not in the local Hugging Face cache")
        assert "HF_HUB_OFFLINE" in message and "\n" not in message


@pytest.mark.usefixtures("no_proxy")
def test_made_up_hub_id_unreachable_hub_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """No retries: one refused connection (port 9 on loopback) ends it."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert not hub_reachable()
    for call in (check_model_reference, load_model):
        start = time.monotonic()
        with pytest.raises(ModelLoadError) as info:
            call(MADE_UP)
        assert time.monotonic() - start < 10
        message = str(info.value)
        assert "not in the local Hugging Face cache and the Hub (http://127.0.0.1:9)" in message
        assert "cannot be reached" in message and "HF_HUB_OFFLINE" in message


@pytest.mark.parametrize(
    "operator,key,value,needle",
    [
        ("add", "mlp_bias", False, "mlp_bias=true"),
        ("ablate", "tie_word_embeddings", True, "ties the embeddings"),
    ],
)
def test_a_folded_checkpoint_whose_config_lost_the_fold_is_refused(
    tmp_path: Path, operator: str, key: str, value: bool, needle: str
) -> None:
    import json

    from conftest import save_tiny_llama
    from steerlab.export.fold import fold
    from steerlab.models import load_model
    from steerlab.vector import SteeringVector

    model_dir, vector_file = save_tiny_llama(tmp_path, "model", "v.safetensors")
    model, tokenizer = load_model(str(model_dir))
    if operator == "ablate":  # a base that ties its embeddings, so the fold unties them
        model, tokenizer = make_model("llama", layers=3, hidden=32)
        model.config.tie_word_embeddings = True
        model.tie_weights()
    vector = SteeringVector.load(vector_file)
    layers = "1-2" if operator == "add" else 1
    folded = tmp_path / "folded"
    fold(
        model,
        vector,
        coefficient=0.5,
        layers=layers,
        operator=operator,
        scale="unit",
        output_dir=folded,
        tokenizer=tokenizer,
    )
    load_model(str(folded))  # as saved: loads
    config_file = folded / "config.json"
    config = json.loads(config_file.read_text())
    config[key] = value
    config_file.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=needle) as caught:
        load_model(str(folded))
    assert str(folded) in str(caught.value) and "\n" not in str(caught.value)
