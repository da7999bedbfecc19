"""``steerlab fold``: a folded checkpoint or rank-1 adapter that loads with plain transformers
/ peft and steers like the hooks; bad input is one line, exit 1, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, invoke
from peft import PeftModel
from transformers import AutoModelForCausalLM

from conftest import save_tiny_llama
from steerlab.models import load_model, peft_wrapping
from steerlab.steer import steer
from steerlab.vector import SteeringVector


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return save_tiny_llama(tmp_path_factory.mktemp("fold"), "model", "v.safetensors")


def _compare(model_dir: Path, vector_file: Path, folded, **steering) -> None:
    model, tokenizer = load_model(str(model_dir))
    inputs = tokenizer(["The quick brown fox", "I am happy"], return_tensors="pt", padding=True)
    mask = inputs["attention_mask"].bool()
    with steer(model, SteeringVector.load(vector_file), **steering):
        hooked = model(**inputs).logits[mask]
    assert not torch.allclose(hooked, model(**inputs).logits[mask], atol=1e-3)
    out = folded(model)(**inputs).logits[mask]
    torch.testing.assert_close(out, hooked, atol=1e-5, rtol=1e-5)


def test_fold_add(saved: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, vector_file = saved
    out = tmp_path / "folded"
    result = invoke(
        [
            *("fold", "-m", str(model_dir), "-v", str(vector_file)),
            *("--coefficient", "0.2", "--layers", "1-2", "-o", str(out)),
        ]
    )
    assert result.exit_code == 0, result.output
    assert "folded add 0.2 (scale norm) at layers 1,2" in result.stdout
    record = json.loads((out / "steerlab_fold.json").read_text())
    assert record["scale"] == "norm" and record["vector"]["file"] == str(vector_file)
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    _compare(model_dir, vector_file, lambda _: plain, coefficient=0.2, layers="1-2", scale="norm")


def test_fold_add_auto_uses_the_calibration(saved: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, vector_file = saved
    record = {"scale": "norm", "layers": [1, 2], "positive": 0.15, "negative": None}
    calibrated = SteeringVector.load(vector_file).with_calibration(record)
    calibrated_file = calibrated.save(tmp_path / "calibrated.safetensors")
    out = tmp_path / "folded"
    args = ["fold", "-m", str(model_dir), "-v", str(calibrated_file), "-o", str(out)]
    result = invoke([*args, "--coefficient", "auto"])
    assert result.exit_code == 0, result.output
    assert "coefficient 0.15 (scale norm, layers 1,2) from the vector's calibration" in (
        result.stdout
    )
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    _compare(model_dir, vector_file, lambda _: plain, coefficient=0.15, layers="1-2", scale="norm")
    refused = invoke([*args[:-1], str(tmp_path / "other"), "--coefficient=-auto"])
    assert_one_line_error(refused, "no negative coefficient")
    assert not (tmp_path / "other").exists()


def test_fold_ablate(saved: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, vector_file = saved
    out = tmp_path / "ablated"
    args = ["fold", "-m", str(model_dir), "-v", str(vector_file), "--operator", "ablate"]
    result = invoke([*args, "--layers", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "ablate layer 1's direction everywhere" in result.stdout
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    _compare(
        model_dir, vector_file, lambda _: plain, operator="ablate", layers=1, sites="everywhere"
    )


def test_fold_peft(saved: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, vector_file = saved
    out = tmp_path / "adapter"
    args = ["fold", "-m", str(model_dir), "-v", str(vector_file), "--operator", "ablate"]
    result = invoke([*args, "--layers", "2", "--format", "peft", "-o", str(out)])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(model_dir.resolve())

    def adapted(base):
        with peft_wrapping():
            return PeftModel.from_pretrained(base, out).eval()

    model, _ = load_model(str(model_dir))
    _compare(
        model_dir,
        vector_file,
        lambda _: adapted(model),
        operator="ablate",
        layers=2,
        sites="everywhere",
    )


@pytest.mark.parametrize(
    "extra,needles",
    [
        (["--operator", "clamp", "--coefficient", "1"], ["clamp", "no fixed weights"]),
        (["--layers", "1"], ["--operator add needs --coefficient"]),
        (["--coefficient", "nan"], ["--coefficient"]),
        (["--coefficient", "1", "--format", "gguf"], ["--format 'gguf'", "checkpoint, peft"]),
        (["--coefficient", "1", "--format", "peft"], ["--format peft", "ablate only"]),
        (["--coefficient", "1", "--scale", "huge"], ["scale"]),
        (["--operator", "ablate", "--layers", "0-1"], ["one direction", "not 2 layers"]),
        (["--coefficient", "1", "--layers", "9"], ["layer 9"]),
    ],
)
def test_bad_inputs(saved: tuple[Path, Path], tmp_path: Path, extra, needles) -> None:
    model_dir, vector_file = saved
    out = tmp_path / "out"
    result = invoke(["fold", "-m", str(model_dir), "-v", str(vector_file), *extra, "-o", str(out)])
    assert_one_line_error(result, *needles)
    assert list(tmp_path.iterdir()) == []


def test_norms_the_vector_lacks_are_measured(saved: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, vector_file = saved
    bare = SteeringVector.load(vector_file)
    bare = SteeringVector(dict(bare.directions), bare.metadata, None)
    bare_file = bare.save(tmp_path / "bare.safetensors")
    out = tmp_path / "folded"
    args = ["fold", "-m", str(model_dir), "-v", str(bare_file), "--coefficient", "0.1"]
    result = invoke([*args, "--layers", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "steerlab_fold.json").read_text())
    assert record["activation_norms"]["1"] > 0


def test_bad_paths(saved: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, vector_file = saved
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep").write_text("x")
    base = ["fold", "-m", str(model_dir), "--coefficient", "1"]
    result = invoke([*base, "-v", str(vector_file), "-o", str(used)])
    assert_one_line_error(result, "not empty")
    assert sorted(p.name for p in used.iterdir()) == ["keep"]
    result = invoke([*base, "-v", str(tmp_path / "none.safetensors"), "-o", str(tmp_path / "o")])
    assert_one_line_error(result, "no such vector file")
    assert not (tmp_path / "o").exists()


def test_a_vector_of_another_model_is_refused(tmp_path: Path) -> None:
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    root_a.mkdir()
    root_b.mkdir()
    _, vector_file = save_tiny_llama(root_a, "model", "v.safetensors")
    from conftest import make_model

    other, tokenizer = make_model("gpt2")
    other.save_pretrained(root_b / "gpt2")
    tokenizer.save_pretrained(root_b / "gpt2")
    out = tmp_path / "out"
    result = invoke(
        [
            *("fold", "-m", str(root_b / "gpt2"), "-v", str(vector_file)),
            *("--coefficient", "1", "-o", str(out)),
        ]
    )
    assert_one_line_error(result, str(vector_file))
    assert not out.exists()
