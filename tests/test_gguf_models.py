"""GGUF model files as models: loading by path, the cache, exactness, one-line refusals.

Each test writes a tiny llama (or a bare header) as GGUF with tests/tiny_gguf.py and uses a
temporary cache (the ``tmp_cache`` fixture), so nothing here touches the user's cache.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf.quants import dequantize, quantize
from transformers import AutoModelForCausalLM
from transformers import __version__ as transformers_version

import steerlab.gguf_models as gguf_models
import steerlab.models as models
from conftest import make_model
from steerlab.errors import ModelLoadError
from steerlab.models import (
    DEFAULT_MODEL_ID,
    check_model_reference,
    gguf_model_folder,
    load_model,
    model_identity,
)
from tiny_gguf import quantizable, write_bare_gguf, write_tiny_gguf

TEXTS = ["I am happy today, the weather is lovely.", "What is the capital of France?"]


@pytest.fixture
def tiny_llama():
    return make_model("llama", layers=2, hidden=32)


@pytest.fixture
def tiny_gguf(tmp_path: Path, tiny_llama) -> Path:
    model, tokenizer = tiny_llama
    return write_tiny_gguf(model, tokenizer, tmp_path / "tiny.gguf")


def cached_models(cache: Path) -> list[str]:
    """Everything in the cache's model folder, hidden temporaries included."""
    folder = cache / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def hidden_states(model, tokenizer) -> tuple[torch.Tensor, ...]:
    """Every layer's hidden states of :data:`TEXTS`, concatenated along the sequence.

    One text at a time: padded positions differ between attention implementations.
    """
    per_text = []
    with torch.no_grad():
        for text in TEXTS:
            batch = tokenizer([text], return_tensors="pt")
            per_text.append(model(**batch, output_hidden_states=True).hidden_states)
    return tuple(torch.cat(layer, dim=1) for layer in zip(*per_text, strict=True))


def refused(call, reference: str, *needles: str) -> str:
    """The one-line ModelLoadError of ``call(reference)``, holding ``needles``."""
    with pytest.raises(ModelLoadError) as info:
        call(reference)
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


# -- loading ---------------------------------------------------------------------------------


def tiny_model(architecture: str, tied: bool):
    """A tiny random model (2 layers, hidden 32), its input and output embeddings tied or not."""
    model, tokenizer = make_model(architecture, layers=2, hidden=32)
    if tied:
        model.config.tie_word_embeddings = True
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(model.config).eval()
    return model, tokenizer


@pytest.mark.parametrize(
    "architecture,tied", [("llama", False), ("llama", True), ("qwen2", False), ("qwen2", True)]
)
def test_gguf_file_loads_as_the_model_it_was_written_from(
    tmp_cache: Path, tmp_path: Path, architecture: str, tied: bool
) -> None:
    model, tokenizer = tiny_model(architecture, tied)
    tiny_gguf = write_tiny_gguf(model, tokenizer, tmp_path / "tiny.gguf")
    check_model_reference(str(tiny_gguf))
    loaded, loaded_tokenizer = load_model(str(tiny_gguf))
    assert not loaded.training and loaded_tokenizer.padding_side == "left"
    assert loaded_tokenizer(TEXTS)["input_ids"] == tokenizer(TEXTS)["input_ids"]
    for ours, theirs in zip(
        hidden_states(model, tokenizer), hidden_states(loaded, tokenizer), strict=True
    ):
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    identity = model_identity(loaded)
    assert identity.model_id == str(tiny_gguf.resolve())  # the file, not the cache folder
    assert (identity.model_type, identity.hidden_size, identity.num_layers) == (
        architecture,
        32,
        2,
    )
    assert loaded.config.tie_word_embeddings is tied
    [name] = cached_models(tmp_cache)
    assert name.startswith("tiny-") and name.endswith(f"-transformers-{transformers_version}")
    source = json.loads((tmp_cache / "models" / name / gguf_models.SOURCE_FILE).read_text())
    assert source == {"gguf": str(tiny_gguf.resolve()), "transformers": transformers_version}


def test_quantised_gguf_loads_de_quantised(tmp_cache: Path, tmp_path: Path) -> None:
    """A Q8_0 file: the loaded weights are exactly gguf's de-quantisation of its blocks."""
    q8 = gguf.GGMLQuantizationType.Q8_0
    model, tokenizer = make_model("llama", layers=2, hidden=32)
    path = write_tiny_gguf(model, tokenizer, tmp_path / "tiny.Q8_0.gguf", quantization=q8)
    with torch.no_grad():
        for parameter in model.parameters():
            if quantizable(parameter):
                rounded = dequantize(quantize(parameter.numpy(), q8), q8)
                assert not np.array_equal(rounded, parameter.numpy())  # it did lose precision
                parameter.copy_(torch.from_numpy(rounded))
    loaded, _ = load_model(str(path))
    for ours, theirs in zip(
        hidden_states(model, tokenizer), hidden_states(loaded, tokenizer), strict=True
    ):
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    assert cached_models(tmp_cache)[0].startswith("tiny.q8_0-")


def test_second_load_uses_the_cache(
    tmp_cache: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_model(str(tiny_gguf))
    [name] = cached_models(tmp_cache)
    folder = tmp_cache / "models" / name
    stamps = {p: p.stat().st_mtime_ns for p in [folder, *folder.iterdir()]}
    conversions: list[tuple[Path, Path]] = []
    hashings: list[Path] = []
    convert, sha256 = gguf_models.convert_gguf, gguf_models.sha256_of_file
    monkeypatch.setattr(
        gguf_models, "convert_gguf", lambda g, f: conversions.append((g, f)) or convert(g, f)
    )
    monkeypatch.setattr(gguf_models, "sha256_of_file", lambda p: hashings.append(p) or sha256(p))
    monkeypatch.chdir(tiny_gguf.parent)
    loaded, _ = load_model(tiny_gguf.name)  # a relative path to the same file
    assert conversions == [] and hashings == []
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert cached_models(tmp_cache) == [name]
    assert model_identity(loaded).model_id == str(tiny_gguf.resolve())


def test_rewritten_file_is_converted_again(tmp_cache: Path, tmp_path: Path) -> None:
    """Same path and size, new weights: the stamp (mtime) and hash change, so does the copy."""
    path = tmp_path / "model.gguf"
    first_model, tokenizer = make_model("llama", layers=2, hidden=32, seed=0)
    write_tiny_gguf(first_model, tokenizer, path)
    load_model(str(path))
    second_model, _ = make_model("llama", layers=2, hidden=32, seed=1)
    write_tiny_gguf(second_model, tokenizer, path)
    loaded, _ = load_model(str(path))
    assert len(cached_models(tmp_cache)) == 2
    torch.testing.assert_close(
        hidden_states(loaded, tokenizer)[-1], hidden_states(second_model, tokenizer)[-1]
    )


def test_embedded_model_keeps_its_folder_name_and_id(
    tmp_cache: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded model goes the same road (here: the tiny GGUF standing in for it)."""
    monkeypatch.setattr(models, "embedded_gguf_path", lambda: tiny_gguf)
    loaded, _ = load_model("default")
    assert model_identity(loaded).model_id == DEFAULT_MODEL_ID
    [name] = cached_models(tmp_cache)
    assert name.startswith("smollm2-135m-instruct-")
    assert gguf_model_folder(tiny_gguf).name == name  # same bytes by path: the same copy


def test_a_copy_of_a_converted_file_is_not_converted_again(
    tmp_cache: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_model(str(tiny_gguf))
    copy = tiny_gguf.with_name("copy.gguf")
    shutil.copy(tiny_gguf, copy)
    conversions: list[Path] = []
    monkeypatch.setattr(gguf_models, "convert_gguf", lambda g, f: conversions.append(g))
    loaded, _ = load_model(str(copy))
    assert conversions == [] and len(cached_models(tmp_cache)) == 1
    assert model_identity(loaded).model_id == str(copy.resolve())


def test_a_gguf_without_the_suffix_is_recognised_by_its_magic(
    tmp_cache: Path, tiny_gguf: Path
) -> None:
    renamed = tiny_gguf.with_name("weights.bin")
    shutil.copy(tiny_gguf, renamed)
    check_model_reference(str(renamed))
    loaded, _ = load_model(str(renamed))
    assert model_identity(loaded).model_id == str(renamed.resolve())


# -- refusals: one line, nothing in the cache --------------------------------------------------


def test_missing_gguf_file(tmp_cache: Path, tmp_path: Path) -> None:
    for reference in (str(tmp_path / "nope.gguf"), "models/nope.gguf", "nope.gguf"):
        for call in (check_model_reference, load_model):
            message = refused(call, reference)
            assert message == f"{reference}: no such GGUF model file"
    assert not tmp_cache.exists()


def test_file_that_is_not_gguf(tmp_cache: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"hello, not a model at all")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    for call in (check_model_reference, load_model):
        refused(call, str(fake), str(fake), "not a GGUF file", "b'hell'")
        refused(call, str(other), "not a model folder or GGUF model file")
    assert not tmp_cache.exists()


def test_truncated_gguf(tmp_cache: Path, tiny_gguf: Path) -> None:
    cut = tiny_gguf.with_name("cut.gguf")
    cut.write_bytes(tiny_gguf.read_bytes()[:200])
    for call in (check_model_reference, load_model):
        refused(call, str(cut), str(cut), "truncated or corrupt GGUF header")
    assert not tmp_cache.exists()


def test_unsupported_architecture(tmp_cache: Path, tmp_path: Path) -> None:
    path = write_bare_gguf(tmp_path / "rwkv.gguf", "rwkv7")
    for call in (check_model_reference, load_model):
        message = refused(call, str(path), str(path), "architecture 'rwkv7'", transformers_version)
        assert "it reads: " in message and "llama" in message and "qwen2" in message
        assert "general" not in message and "tokenizer" not in message
    assert not tmp_cache.exists()


@pytest.mark.parametrize(
    "architecture,metadata,needle",
    [
        ("controlvector", {"controlvector__layer_count": 2}, "control vector, not a model"),
        ("llama", {"split__count": 3, "split__no": 0}, "split GGUF model"),
    ],
)
def test_control_vector_or_split_part(
    tmp_cache: Path, tmp_path: Path, architecture: str, metadata: dict[str, int], needle: str
) -> None:
    path = write_bare_gguf(tmp_path / "thing.gguf", architecture, **metadata)
    for call in (check_model_reference, load_model):
        refused(call, str(path), str(path), needle)
    assert not tmp_cache.exists()


def test_unwritable_cache(tmp_path: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("STEERLAB_CACHE", str(blocker))
    before = sorted(tmp_path.iterdir())
    message = refused(load_model, str(tiny_gguf), str(blocker))
    assert "cannot write the model cache" in message and "STEERLAB_CACHE" in message
    assert blocker.is_file() and blocker.read_text() == ""  # nothing written over it
    assert sorted(tmp_path.iterdir()) == before  # and nothing beside it


def test_transformers_refusal_during_conversion_is_reworded(
    tmp_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no list of architectures to check against, transformers' own error is caught."""
    monkeypatch.setattr(gguf_models, "gguf_supported_architectures", lambda: ())
    path = write_bare_gguf(tmp_path / "rwkv.gguf", "rwkv7")
    refused(load_model, str(path), str(path), "cannot read GGUF models of architecture 'rwkv7'")
    assert cached_models(tmp_cache) == []  # no half-written temporary folder either


def test_failed_conversion_leaves_nothing_half_written(
    tmp_cache: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save = gguf_models.save_checkpoint

    def save_then_fail(model, tokenizer, folder):
        save(model, tokenizer, folder)  # the weights are on disk: then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf_models, "save_checkpoint", save_then_fail)
    refused(load_model, str(tiny_gguf), str(tiny_gguf), "cannot convert this GGUF model")
    assert cached_models(tmp_cache) == []
    monkeypatch.setattr(gguf_models, "save_checkpoint", save)
    load_model(str(tiny_gguf))  # and the next try converts cleanly
    assert len(cached_models(tmp_cache)) == 1


def test_another_process_finishing_first_is_not_an_error(
    tmp_cache: Path, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between our save and our rename, another process renames its copy into place."""
    save = gguf_models.save_checkpoint

    def save_while_another_finishes(model, tokenizer, folder):
        save(model, tokenizer, folder)
        final = folder.parent / folder.name[1:].rsplit(".", 1)[0]  # ".NAME.random" -> NAME
        shutil.copytree(folder, final)

    monkeypatch.setattr(gguf_models, "save_checkpoint", save_while_another_finishes)
    loaded, _ = load_model(str(tiny_gguf))
    assert model_identity(loaded).num_layers == 2
    assert len(cached_models(tmp_cache)) == 1  # theirs, and no temporary of ours


def _first_load(path: str) -> str:
    """In a fresh process: the cached copy of ``path`` (converting it if none is there)."""
    return str(gguf_model_folder(Path(path)))


def test_concurrent_first_loads_share_one_copy(tmp_cache: Path, tiny_gguf: Path) -> None:
    # Separate processes, as users run them: transformers' loading is not thread-safe (its
    # global init-skipping switches, entered and left by several threads at once, can stay
    # on and leave every later model uninitialised).
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        folders = pool.map(_first_load, [str(tiny_gguf)] * 3)
    assert len(set(folders)) == 1 and len(cached_models(tmp_cache)) == 1
    loaded, _ = load_model(folders[0])
    assert model_identity(loaded).hidden_size == 32


@pytest.mark.slow
def test_embedded_gguf_by_its_path_is_the_default_model() -> None:
    """The real quantised file (Q4_1) by path: the default model's cached copy, its own id."""
    path = models.embedded_gguf_path()
    before = set(cached_models(models.cache_dir()))
    by_path, tokenizer = load_model(str(path))
    default, _ = load_model("default")
    assert model_identity(by_path).model_id == str(path.resolve())
    assert model_identity(default).model_id == DEFAULT_MODEL_ID
    assert set(cached_models(models.cache_dir())) == before | {models.default_model_folder().name}
    batch = tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(by_path(**batch).logits, default(**batch).logits)
