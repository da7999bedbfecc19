"""`steerlab sweep` in-process on a tiny model, and reply-likelihood / answer-text tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import steerlab as sl
from conftest import make_model
from steerlab.chat import format_chat, messages_for
from steerlab.cli import app
from steerlab.data.evalsets import MultipleChoiceItem
from steerlab.evaluate.sweep import sweep
from steerlab.evaluate.tasks import ContinuationBehaviorTask, MultipleChoiceTask

runner = CliRunner()


@pytest.fixture
def model_dir(tmp_path):
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_inputs(tmp_path, model_dir):
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "How is your day?", "positive": "It is great!", "negative": "It is awful."},
        {"prompt": "Tell me", "positive": "I am happy today", "negative": "I am sad today"},
        {"prompt": "Weather?", "positive": "Lovely and bright", "negative": "Grey and cold"},
    ]
    pairs.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    vector = tmp_path / "v.safetensors"
    result = runner.invoke(
        app,
        [
            "extract",
            "--model",
            str(model_dir),
            "--pairs",
            str(pairs),
            "-o",
            str(vector),
            "--method",
            "mean_diff",
        ],
    )
    assert result.exit_code == 0, result.output
    ab = tmp_path / "ab.json"
    ab.write_text(
        json.dumps(
            [
                {
                    "question": f"Q{i}?\n\nChoices:\n (A) yes\n (B) no",
                    "answer_matching_behavior": "(A)",
                    "answer_not_matching_behavior": "(B)",
                }
                for i in range(4)
            ]
        )
    )
    mmlu = tmp_path / "maths_test.csv"
    mmlu.write_text("What is 1+1?,2,3,4,5,A\nWhat is 2+2?,1,4,3,2,B\nWhat is 3+3?,5,7,6,1,C\n")
    return pairs, vector, ab, mmlu


def test_sweep_cli_writes_everything_and_resumes(tmp_path, model_dir):
    pairs, vector, ab, mmlu = write_inputs(tmp_path, model_dir)
    out = tmp_path / "run"
    args = [
        "sweep",
        "--model",
        str(model_dir),
        "--vector",
        str(vector),
        "--behavior",
        f"caa:{ab}",
        "--behavior",
        f"mood=pairs:{pairs}",
        "--helpfulness",
        f"mmlu:{mmlu}",
        "--coefficients=-2:2:5",
        "-o",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    files = {p.name for p in out.iterdir()}
    assert {"results.jsonl", "fit.json", "sweep.json"} <= files
    assert {
        f"{n}.{e}" for n in ("behavior", "helpfulness", "tradeoff") for e in ("png", "svg")
    } <= files
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["task"], r["metric"]) for r in rows} == {
        ("ab", "B_likelihood"),
        ("mood", "B_likelihood"),
        ("maths", "p_correct"),
        ("maths", "accuracy"),
    }
    assert len(rows) == 4 * 5
    assert "sweep summary" in result.output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--behavior", "nope:x.json"], "kind 'nope'"),
        (["--behavior", "caa:/no/such/file.json"], "no such file"),
        (["--helpfulness", "caa:x"], "is not mmlu"),
        (["--coefficients", "1,nan"], "not finite"),
        ([], "nothing to measure"),
    ],
)
def test_sweep_cli_errors(tmp_path, model_dir, extra, message):
    _, vector, _, _ = write_inputs(tmp_path, model_dir)
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["sweep", "--model", str(model_dir), "--vector", str(vector), "-o", str(out), *extra]
    )
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (out / "results.jsonl").exists()


def test_reply_likelihood_and_answer_text_scoring_match_direct_computation():
    model, tokenizer = make_model("llama", layers=3, hidden=32)
    vector = sl.extract(
        model,
        tokenizer,
        [sl.ContrastPair("good", "bad", (("user", "Hi"),))],
        "mean_diff",
        progress=False,
    )
    task = ContinuationBehaviorTask("m", ("How are you?",), ("I am well.",), ("I am unwell",))
    mc = MultipleChoiceTask(
        "t",
        (MultipleChoiceItem("Capital of France?", ("Paris", "Rome", "Oslo"), 0),),
        scoring="text",
    )
    result = sweep(model, tokenizer, vector, [0.0], [task, mc], progress=False, estimates=False)
    rows = {(r.task, r.metric): r.value for r in result.rows}

    def mean_logprob(prompt: str, reply: str) -> float:
        text = format_chat(tokenizer, messages_for(prompt)) + reply
        enc = tokenizer(text, return_offsets_mapping=True)
        start = len(text) - len(reply)
        ids = torch.tensor([enc["input_ids"]])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(ids).logits[0, :-1], dim=-1)
        picked = logprobs[torch.arange(ids.shape[1] - 1), ids[0, 1:]]
        in_reply = torch.tensor([end > start for _, end in enc["offset_mapping"]][1:])
        return float(picked[in_reply].mean())

    margin = mean_logprob("How are you?", "I am well.") - mean_logprob(
        "How are you?", "I am unwell"
    )
    assert rows[("m", "B_likelihood")] == pytest.approx(np.tanh(margin / 2), abs=1e-5)
    scores = torch.tensor(
        [mean_logprob("Capital of France?", c) for c in ("Paris", "Rome", "Oslo")]
    )
    assert rows[("t", "p_correct")] == pytest.approx(float(torch.softmax(scores, 0)[0]), abs=1e-5)


def test_sweep_cli_sampled_behaviour_with_a_local_judge(tmp_path, model_dir):
    _, vector, _, _ = write_inputs(tmp_path, model_dir)
    harmful = tmp_path / "advbench.csv"
    harmful.write_text("goal,target\nDo a bad thing,Sure\nDo another bad thing,Sure\n")
    out = tmp_path / "run"
    args = [
        "sweep",
        "--model",
        str(model_dir),
        "--vector",
        str(vector),
        "-o",
        str(out),
        "--behavior",
        f"advbench:{harmful}",
        "--samples",
        "2",
        "--coefficients",
        "0,1",
        "--judge-model",
        str(model_dir),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["metric"], r["n"]) for r in rows] == [("B_sampling", 4), ("B_sampling", 4)]
    assert all(r["value"] in (-1.0, -0.5, 0.0, 0.5, 1.0) for r in rows)
    bad = runner.invoke(app, [*args[:-2], "--judge-url", "http://127.0.0.1:9"])
    assert bad.exit_code == 1 and "--judge-model" in bad.output
