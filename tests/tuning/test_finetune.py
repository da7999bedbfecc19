"""finetune(): LoRA / layer SFT on tiny models, resumption, early stopping, the run folder, CLI."""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner, Result

from conftest import make_model
from steerlab.data.chats import load_chats
from steerlab.errors import SpecError
from steerlab.models import load_model
from steerlab.tuning import (
    ChatDataset,
    FinetuneConfig,
    SteerlabTrainer,
    collator_for,
    finetune,
    read_loss_log,
    training_arguments,
)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS = re.compile(r"^Loading weights: +\d+%\|")
CHATS = [
    [
        {"role": "user", "content": "Tell me about your day."},
        {"role": "assistant", "content": "It was a good day at work."},
    ],
    [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris is the capital of France."},
    ],
] * 4
FAST = {"progress": False}


def logits_of(model: torch.nn.Module, tokenizer: Any, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


PROBES = ["The quick brown fox", "Paris is the capital of France."]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama saved to a folder, so adapters can name their base by path."""
    folder = tmp_path_factory.mktemp("tiny-base")
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# -- training --------------------------------------------------------------------------------


def quick(**overrides: Any) -> FinetuneConfig:
    settings: dict[str, Any] = {
        "max_steps": 6,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "max_length": 64,
        "save_steps": 50,
        "rank": 4,
    }
    settings.update(overrides)
    return FinetuneConfig(**settings)


def test_training_lowers_the_loss_and_the_run_folder_loads(base_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_model(str(base_dir))
    out = tmp_path / "run"
    result = finetune(model, tokenizer, CHATS, out, quick(), **FAST)
    assert result.steps == (1, 2, 3, 4, 5, 6) and result.global_step == 6
    assert result.losses[-1] < result.losses[0]
    assert result.final_loss == result.losses[-1]
    assert result.adapter_dir == out and result.merged_dir is None and result.resumed_from is None

    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(base_dir) and adapter["r"] == 4
    assert (out / "adapter_model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "config.json").exists()

    rows = read_loss_log(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all({"loss", "learning_rate"} <= set(r) for r in rows)
    record = json.loads(result.provenance.read_text())
    assert record["status"] == "complete" and record["base_model"] == str(base_dir)
    assert record["seed"] == 0 and len(record["data_sha256"]) == 64 and record["global_step"] == 6
    assert record["config"]["rank"] == 4 and record["library_version"]

    loaded, loaded_tokenizer = load_model(str(out))
    expected = logits_of(result.model, tokenizer, PROBES)
    assert torch.allclose(logits_of(loaded, loaded_tokenizer, PROBES), expected, atol=1e-5)
    base, _ = load_model(str(base_dir))
    assert not torch.allclose(logits_of(base, tokenizer, PROBES), expected, atol=1e-3)


@pytest.mark.filterwarnings("default")  # pyproject ignores FutureWarning in tests
def test_no_checkpointing_deprecation_warning_and_only_ours_silenced(
    base_dir: Path, tmp_path: Path
) -> None:
    model, tokenizer = load_model(str(base_dir))

    def warns_outside() -> bool:
        # Deprecated (and warning) from transformers 5.23; absent in transformers 6.
        plain, _ = load_model(str(base_dir))
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            getattr(plain, "is_gradient_checkpointing", None)
        return any("is_gradient_checkpointing" in str(w.message) for w in seen)

    deprecated = warns_outside()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        finetune(model, tokenizer, CHATS, tmp_path / "run", quick(max_steps=1), **FAST)
        load_model(str(tmp_path / "run"))  # the adapter folder: PeftModel.from_pretrained
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
    # Silenced only inside our peft calls: where the warning exists, it still fires after.
    assert warns_outside() == deprecated


def test_merge_writes_a_plain_checkpoint(base_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_model(str(base_dir))
    out = tmp_path / "run"
    result = finetune(model, tokenizer, CHATS, out, quick(max_steps=3, merge=True), **FAST)
    assert result.merged_dir == out / "merged"
    plain = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    via_adapter, _ = load_model(str(out))
    expected = logits_of(via_adapter, tokenizer, PROBES)
    assert torch.allclose(logits_of(plain, tokenizer, PROBES), expected, atol=1e-5)
    assert torch.allclose(logits_of(result.model, tokenizer, PROBES), expected, atol=1e-5)
    assert (out / "merged" / "tokenizer.json").is_file()
    # transformers 4.x reads the same RoPE base (the keys steerlab.checkpoints adds).
    config = json.loads((out / "merged" / "config.json").read_text())
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"]


def test_resume_continues_from_the_last_checkpoint(base_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    model, tokenizer = load_model(str(base_dir))
    first = finetune(model, tokenizer, CHATS, out, quick(max_steps=4, save_steps=2), **FAST)
    assert first.steps == (1, 2, 3, 4)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    model, tokenizer = load_model(str(base_dir))
    second = finetune(model, tokenizer, CHATS, out, quick(max_steps=6, save_steps=2), **FAST)
    assert second.resumed_from == out / "checkpoint-4"
    assert second.steps == (1, 2, 3, 4, 5, 6) and second.global_step == 6
    assert second.losses[:4] == first.losses
    assert [r["step"] for r in read_loss_log(out)] == [1, 2, 3, 4, 5, 6]
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert json.loads(second.provenance.read_text())["resumed_from"] == "checkpoint-4"

    model, tokenizer = load_model(str(base_dir))
    with pytest.raises(SpecError, match="another rank"):
        finetune(model, tokenizer, CHATS, out, quick(max_steps=8, rank=8), **FAST)


def test_fresh_start_without_resume(base_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    model, tokenizer = load_model(str(base_dir))
    finetune(model, tokenizer, CHATS, out, quick(max_steps=2, save_steps=1), **FAST)
    model, tokenizer = load_model(str(base_dir))
    again = finetune(model, tokenizer, CHATS, out, quick(max_steps=1), resume=False, **FAST)
    assert again.resumed_from is None and again.steps == (1,)
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-1"]


def test_output_folder_holding_a_model_is_refused(base_dir: Path) -> None:
    model, tokenizer = load_model(str(base_dir))
    with pytest.raises(SpecError, match="not a steerlab fine-tune"):
        finetune(model, tokenizer, CHATS, base_dir, quick(), **FAST)


def test_full_finetune_changes_only_the_chosen_layers(base_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_model(str(base_dir))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    out = tmp_path / "run"
    config = quick(max_steps=3, full_finetune_layers=(1,), learning_rate=1e-3)
    result = finetune(model, tokenizer, CHATS, out, config, **FAST)
    assert result.trained_layers == (1,) and result.target_modules == ()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("model.layers.1.") for n in changed)
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"]
    loaded, _ = load_model(str(out))
    expected = logits_of(model, tokenizer, PROBES)
    assert torch.allclose(logits_of(loaded, tokenizer, PROBES), expected, atol=1e-6)


def test_eval_split_reports_an_eval_loss(base_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_model(str(base_dir))
    result = finetune(
        model, tokenizer, CHATS, tmp_path / "run", quick(max_steps=2, eval_fraction=0.25), **FAST
    )
    assert result.eval_loss is not None and result.eval_loss > 0
    record = json.loads(result.provenance.read_text())
    assert record["n_eval_examples"] == 2 and record["n_train_examples"] == 6


def test_early_stopping_ends_with_the_best_checkpoint(base_dir: Path, tmp_path: Path) -> None:
    config = quick(
        max_steps=6,
        save_steps=1,
        eval_fraction=0.25,
        early_stopping_patience=1,
        early_stopping_threshold=1e9,
    )
    args = training_arguments(config, tmp_path / "args", evaluate=True)
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    assert args.greater_is_better is False and args.eval_steps == args.save_steps == 1
    model, tokenizer = load_model(str(base_dir))
    result = finetune(model, tokenizer, CHATS, tmp_path / "run", config, **FAST)
    # Evaluation 1 sets the reference; evaluation 2 cannot beat it by 1e9, so training stops.
    assert result.stopped_early and result.global_step == 2 and result.steps == (1, 2)
    record = json.loads(result.provenance.read_text())
    assert record["stopped_early"] is True and record["global_step"] == 2
    assert record["best_checkpoint"] in ("checkpoint-1", "checkpoint-2")
    assert result.eval_loss == pytest.approx(record["best_metric"], rel=1e-5)
    assert record["config"]["early_stopping_patience"] == 1


class PenalisedTrainer(SteerlabTrainer):
    """A subclass adding a loss term on captured activations, as representation tuning will."""

    def forward_context(self, model: torch.nn.Module, inputs: Any) -> Any:
        @contextlib.contextmanager
        def capture() -> Iterator[dict[str, torch.Tensor]]:
            captured: dict[str, torch.Tensor] = {}
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            handle = base.model.layers[1].register_forward_hook(
                lambda _m, _i, out: captured.__setitem__(
                    "h", out[0] if isinstance(out, tuple) else out
                )
            )
            try:
                yield captured
            finally:
                handle.remove()

        return capture()

    def extra_losses(
        self, model: torch.nn.Module, inputs: Any, outputs: Any, captured: Any
    ) -> dict[str, torch.Tensor]:
        return {"norm_loss": 0.01 * captured["h"].pow(2).mean()}


def test_subclass_losses_are_added_and_logged(base_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_model(str(base_dir))
    out = tmp_path / "run"
    result = finetune(
        model,
        tokenizer,
        CHATS,
        out,
        quick(max_steps=2, gradient_accumulation=2, batch_size=2),
        trainer_class=PenalisedTrainer,
        kind="test-penalised",
        **FAST,
    )
    rows = read_loss_log(out)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert row["norm_loss"] > 0 and row["ce_loss"] > 0
        assert row["loss"] == pytest.approx(row["ce_loss"] + row["norm_loss"], rel=1e-3)
    assert json.loads(result.provenance.read_text())["kind"] == "test-penalised"


# -- CLI -------------------------------------------------------------------------------------


def cli_app() -> typer.Typer:
    """steerlab's app (the ``finetune`` command is registered there)."""
    from steerlab.cli import app

    return app


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli_app(), args)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [ANSI.sub("", line) for line in result.stderr.strip().splitlines()]
    # transformers may draw a "Loading weights" bar; nothing else may appear.
    lines = [line for line in lines if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    return lines[0]


@pytest.fixture
def chats_file(tmp_path: Path) -> Path:
    path = tmp_path / "chats.json"
    path.write_text(json.dumps(CHATS), encoding="utf-8")
    return path


def test_cli_finetune(base_dir: Path, chats_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["finetune", "--model", str(base_dir), "--data", str(chats_file), "-o", str(out)]
    args += ["--max-steps", "2", "--batch-size", "4", "--lr", "1e-2", "--rank", "4"]
    result = invoke([*args, "--target-modules", "q_proj,v_proj", "--limit", "6", "--merge"])
    assert result.exit_code == 0, result.output
    assert "final loss" in result.stdout and str(out) in result.stdout
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    assert adapter["base_model_name_or_path"] == str(base_dir.resolve())
    assert json.loads((out / "steerlab_finetune.json").read_text())["n_chats"] == 6
    assert (out / "merged" / "config.json").is_file()


def test_cli_finetune_layers(base_dir: Path, chats_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["finetune", "-m", str(base_dir), "-d", str(chats_file), "-o", str(out)]
    result = invoke([*args, "--max-steps", "1", "--layers", "1-2"])
    assert result.exit_code == 0, result.output
    assert "layers 1,2" in result.stdout
    assert json.loads((out / "steerlab_finetune.json").read_text())["trained_layers"] == [1, 2]


def test_cli_errors(base_dir: Path, chats_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": CHATS[0]}) + "\n{not json\n", encoding="utf-8")
    base = ["finetune", "-m", str(base_dir), "-o", str(tmp_path / "run")]
    line = one_line_error(invoke([*base, "--data", str(bad)]))
    assert f"{bad}:2: invalid JSON" in line
    line = one_line_error(invoke([*base, "--data", str(chats_file), "--rank", "0"]))
    assert "rank must be a positive integer, got 0" in line
    line = one_line_error(invoke([*base, "--data", str(chats_file), "--layers", "7"]))
    assert "7" in line
    line = one_line_error(
        invoke([*base, "--data", str(chats_file), "--layers", "1", "--target-modules", "q_proj"])
    )
    assert "exclude each other" in line
    assert not (tmp_path / "run").exists()


# -- the embedded model ----------------------------------------------------------------------


@pytest.mark.slow
def test_finetune_the_embedded_model_on_the_deception_data(tmp_path: Path) -> None:
    import steerlab as sl

    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "deception"
    path = path / "deception_dataset.json"
    if not path.is_file():
        pytest.skip("shared data not available")
    chats = load_chats(path, limit=40)
    model, tokenizer = sl.load_model("default")
    prompts = ["How can I improve my writing skills?", "What is the best way to save money?"]
    before = [g.text for g in sl.generate(model, tokenizer, prompts, None, max_new_tokens=20)]
    data = ChatDataset(tokenizer, chats[:8], max_length=128)
    collate = collator_for(tokenizer)

    def held_loss(m: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(m(**collate(data.examples)).loss)

    loss_before = held_loss(model)
    config = FinetuneConfig(
        max_steps=10, batch_size=2, max_length=128, learning_rate=1e-3, save_steps=100
    )
    result = finetune(model, tokenizer, chats, tmp_path / "run", config, progress=False)
    assert (
        json.loads((tmp_path / "run" / "adapter_config.json").read_text())[
            "base_model_name_or_path"
        ]
        == "default"
    )
    assert held_loss(result.model) < loss_before
    assert sum(result.losses[-3:]) < sum(result.losses[:3])
    after = [g.text for g in sl.generate(result.model, tokenizer, prompts, None, max_new_tokens=20)]
    assert after != before
