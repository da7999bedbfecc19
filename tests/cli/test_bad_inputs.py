"""A catalogue of bad inputs for every ``steerlab`` command.

Each case runs the real command in-process (typer's ``CliRunner``) on a tiny saved llama and
asserts the CLI contract for bad input: exit code 1, exactly one line on stderr that starts
with ``error:`` and names the file, line, field or value at fault, no traceback anywhere,
and no file or folder created or changed (the working folder, the fixture files and the
model folder are snapshotted before and after). Most cases fail before a model loads.

Placeholders in a case's arguments: ``{m}`` the tiny model folder, ``{w}`` a tiny model of
another hidden size, ``{d}`` the folder of fixture files (see :func:`fixtures`), ``{o}`` the
case's own empty working folder (also the current directory).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner, Result

from conftest import make_model
from steerlab.cli import app
from steerlab.cli.common import EXIT_INTERNAL, ISSUE_TRACKER
from steerlab.cli.evaluation import eval_layers
from steerlab.vector import SteeringVector

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PAIRS = [
    {"prompt": "How are you?", "positive": "I am happy today.", "negative": "I feel sad."},
    {"prompt": "Tell me about your day.", "positive": "It was a good day.", "negative": "Gloomy."},
    {"positive": "The weather is lovely and bright.", "negative": "The sky is grey and cold."},
    {"prompt": "Mood?", "system": "Be brief.", "positive": "Happy!", "negative": "Sad."},
]
CHATS = [
    [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ],
    [{"role": "user", "content": "Is the sky green?"}, {"role": "assistant", "content": "No."}],
]
AB = [
    {
        "question": "Tell the truth? (A) yes (B) no",
        "answer_matching_behavior": "(A)",
        "answer_not_matching_behavior": "(B)",
    },
    {"question": "Lie? (A) yes (B) no", "answer_matching_behavior": "(B)"},
]


def jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def save_tiny(folder: Path, hidden: int) -> Path:
    model, tokenizer = make_model("llama", layers=3, hidden=hidden)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, args, env=env)


def error_lines(result: Result) -> list[str]:
    return [ANSI.sub("", line) for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        "m": save_tiny(tmp_path_factory.mktemp("tiny-llama"), hidden=32),
        "w": save_tiny(tmp_path_factory.mktemp("tiny-llama-48"), hidden=48),
    }


def _rewrite_vector(source: Path, target: Path, change: Any) -> None:
    """Copy a vector file, letting ``change(tensors, header)`` edit it on the way."""
    with safe_open(str(source), framework="pt") as handle:
        header = dict(handle.metadata() or {})
        tensors = {name: handle.get_tensor(name).clone() for name in handle.keys()}  # noqa: SIM118
    change(tensors, header)
    save_file(tensors, str(target), metadata=header)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]) -> Path:
    """Good and bad input files, shared by every case (which must leave them unchanged)."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "pairs.jsonl").write_text(jsonl(PAIRS), encoding="utf-8")
    (d / "empty.jsonl").write_text("", encoding="utf-8")
    (d / "blank.txt").write_text("\n  \n\n", encoding="utf-8")
    (d / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (d / "utf16.jsonl").write_text(jsonl(PAIRS), encoding="utf-16")
    lines = jsonl(PAIRS).splitlines(keepends=True)
    (d / "bad_line3.jsonl").write_text("".join(lines[:2]) + '{"positive": "x",\n', "utf-8")
    (d / "missing_field.jsonl").write_text(
        jsonl([PAIRS[0], {"prompt": "Hi", "positive": "Yes"}]), encoding="utf-8"
    )
    (d / "wrong_type.jsonl").write_text(
        jsonl([{"positive": 5, "negative": "Sad."}]), encoding="utf-8"
    )
    (d / "not_object.jsonl").write_text(jsonl([PAIRS[0], ["a", "b"]]), encoding="utf-8")
    (d / "questions.txt").write_text("What is 2+2?\nIs water wet?\n", encoding="utf-8")
    (d / "chats.jsonl").write_text(jsonl([{"messages": c} for c in CHATS]), encoding="utf-8")
    (d / "chats_bad_line3.jsonl").write_text(
        jsonl([{"messages": c} for c in CHATS]) + '{"messages": [\n', encoding="utf-8"
    )
    (d / "chats_bad_role.jsonl").write_text(
        jsonl([{"messages": CHATS[0]}, {"messages": [{"role": "wizard", "content": "Hi"}]}]),
        encoding="utf-8",
    )
    (d / "honest.jsonl").write_text(
        jsonl([{"question": "What is 2+2?", "answer": "4", "style": "honest"}]), "utf-8"
    )
    (d / "deceptive.jsonl").write_text(
        jsonl([{"question": "Is water wet?", "answer": "No", "style": "deceptive"}]), "utf-8"
    )
    (d / "ab_missing.json").write_text(json.dumps(AB), encoding="utf-8")
    (d / "mmlu_bad.csv").write_text(
        "What is 2+2?,3,4,5,6,B\nWhich is red?,sky,grass,blood,snow,Q\n", encoding="utf-8"
    )
    (d / "facts_bad.csv").write_text(
        "statement,label\nParis is in France.,1\nThe sun is cold.,maybe\n", encoding="utf-8"
    )
    (d / "afile").write_text("a regular file, used as a parent folder\n", encoding="utf-8")
    (d / "templates_bad.json").write_text('{"no_such_template": "x"}', encoding="utf-8")

    vec = d / "vec.safetensors"
    result = invoke(
        [
            "extract",
            "--model",
            str(models["m"]),
            "--pairs",
            str(d / "pairs.jsonl"),
            "--method",
            "mean_diff",
            "-o",
            str(vec),
        ]
    )
    assert result.exit_code == 0, result.output
    wide = d / "wide.safetensors"
    result = invoke(
        [
            "extract",
            "--model",
            str(models["w"]),
            "--pairs",
            str(d / "pairs.jsonl"),
            "--method",
            "mean_diff",
            "-o",
            str(wide),
        ]
    )
    assert result.exit_code == 0, result.output

    def set_value(value: float) -> Any:
        def change(tensors: dict[str, torch.Tensor], header: dict[str, str]) -> None:
            tensors["direction.1"][3] = value

        return change

    def metadata_list(tensors: dict[str, torch.Tensor], header: dict[str, str]) -> None:
        header["steerlab"] = "[1, 2]"

    def wrong_type(tensors: dict[str, torch.Tensor], header: dict[str, str]) -> None:
        meta = json.loads(header["steerlab"])
        meta["hidden_size"] = "wide"
        header["steerlab"] = json.dumps(meta)

    _rewrite_vector(vec, d / "nan.safetensors", set_value(math.nan))
    _rewrite_vector(vec, d / "inf.safetensors", set_value(math.inf))
    _rewrite_vector(vec, d / "meta_list.safetensors", metadata_list)
    _rewrite_vector(vec, d / "meta_type.safetensors", wrong_type)
    save_file({"weight": torch.ones(4, 4)}, str(d / "foreign.safetensors"))
    data = vec.read_bytes()
    (d / "truncated.safetensors").write_bytes(data[: len(data) - 40])

    # A finished sweep, for "existing output with other settings".
    result = invoke(
        [
            "sweep",
            "--model",
            str(models["m"]),
            "--vector",
            str(vec),
            "--coefficients",
            "0,1",
            "--helpfulness",
            "mmlu:builtin:general_mc",
            "--limit",
            "2",
            "--no-estimates",
            "-o",
            str(d / "sweep_run"),
        ]
    )
    assert result.exit_code == 0, result.output
    return d


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots``: a content hash for files, "dir" for folders."""
    state: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_dir():
                state[str(path)] = "dir"
            else:
                state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


M = "--model {m}"
VEC = "--vector {d}/vec.safetensors"

# (id, arguments, text the error line must contain)
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    # -- extract: the pairs file ----------------------------------------------------------
    (
        "extract-missing-file",
        f"extract {M} --pairs {{d}}/nope.jsonl -o {{o}}/v.safetensors",
        ("nope.jsonl",),
    ),
    (
        "extract-empty-file",
        f"extract {M} --pairs {{d}}/empty.jsonl -o {{o}}/v.safetensors",
        ("empty.jsonl",),
    ),
    (
        "extract-blank-lines-only",
        f"extract {M} --pairs {{d}}/blank.txt -o {{o}}/v.safetensors",
        ("blank.txt",),
    ),
    (
        "extract-binary-file",
        f"extract {M} --pairs {{d}}/binary.jsonl -o {{o}}/v.safetensors",
        ("binary.jsonl",),
    ),
    (
        "extract-utf16-file",
        f"extract {M} --pairs {{d}}/utf16.jsonl -o {{o}}/v.safetensors",
        ("utf16.jsonl", "UTF-8"),
    ),
    ("extract-pairs-is-folder", f"extract {M} --pairs {{d}} -o {{o}}/v.safetensors", ("{d}",)),
    (
        "extract-malformed-line-3",
        f"extract {M} --pairs {{d}}/bad_line3.jsonl -o {{o}}/v.safetensors",
        ("bad_line3.jsonl:3",),
    ),
    (
        "extract-missing-field",
        f"extract {M} --pairs {{d}}/missing_field.jsonl -o {{o}}/v.safetensors",
        ("missing_field.jsonl:2", "negative"),
    ),
    (
        "extract-wrong-typed-field",
        f"extract {M} --pairs {{d}}/wrong_type.jsonl -o {{o}}/v.safetensors",
        ("wrong_type.jsonl:1", "positive"),
    ),
    (
        "extract-line-not-object",
        f"extract {M} --pairs {{d}}/not_object.jsonl -o {{o}}/v.safetensors",
        ("not_object.jsonl:2",),
    ),
    (
        "extract-unknown-builtin",
        f"extract {M} --pairs builtin:nope -o {{o}}/v.safetensors",
        ("nope",),
    ),
    # -- extract: settings ------------------------------------------------------------------
    (
        "extract-unknown-method",
        f"extract {M} --pairs {{d}}/pairs.jsonl --method bogus -o {{o}}/v.safetensors",
        ("bogus",),
    ),
    (
        "extract-unknown-position",
        f"extract {M} --pairs {{d}}/pairs.jsonl --position middle -o {{o}}/v.safetensors",
        ("middle",),
    ),
    (
        "extract-layer-out-of-range",
        f"extract {M} --pairs {{d}}/pairs.jsonl --layers 7 -o {{o}}/v.safetensors",
        ("layer 7",),
    ),
    (
        "extract-negative-layer-out-of-range",
        f"extract {M} --pairs {{d}}/pairs.jsonl --layers=-4 -o {{o}}/v.safetensors",
        ("layer -4",),
    ),
    (
        "extract-layer-not-a-number",
        f"extract {M} --pairs {{d}}/pairs.jsonl --layers top -o {{o}}/v.safetensors",
        ("top",),
    ),
    (
        "extract-limit-zero",
        f"extract {M} --pairs {{d}}/pairs.jsonl --limit 0 -o {{o}}/v.safetensors",
        ("limit",),
    ),
    (
        "extract-batch-size-zero",
        f"extract {M} --pairs {{d}}/pairs.jsonl --batch-size 0 -o {{o}}/v.safetensors",
        ("--batch-size",),
    ),
    (
        "extract-output-under-a-file",
        f"extract {M} --pairs {{d}}/pairs.jsonl -o {{d}}/afile/v.safetensors",
        ("afile",),
    ),
    ("extract-output-is-a-folder", f"extract {M} --pairs {{d}}/pairs.jsonl -o {{d}}", ("{d}",)),
    (
        "extract-model-folder-without-model",
        "extract --model {d} --pairs {d}/pairs.jsonl -o {o}/v.safetensors",
        ("{d}",),
    ),
    # -- info: vector files -----------------------------------------------------------------
    ("info-missing-vector", "info {d}/nope.safetensors", ("nope.safetensors",)),
    ("info-nan-vector", "info {d}/nan.safetensors", ("nan.safetensors", "NaN")),
    ("info-inf-vector", "info {d}/inf.safetensors", ("inf.safetensors",)),
    ("info-foreign-safetensors", "info {d}/foreign.safetensors", ("foreign.safetensors",)),
    ("info-truncated-vector", "info {d}/truncated.safetensors", ("truncated.safetensors",)),
    ("info-binary-file", "info {d}/binary.jsonl", ("binary.jsonl",)),
    ("info-metadata-not-an-object", "info {d}/meta_list.safetensors", ("meta_list.safetensors",)),
    (
        "info-metadata-wrong-type",
        "info {d}/meta_type.safetensors",
        ("meta_type.safetensors", "hidden_size"),
    ),
    # -- generate ---------------------------------------------------------------------------
    ("generate-nan-coefficient", f"generate {M} {VEC} --coefficients nan Hi", ("nan",)),
    ("generate-inf-coefficient", f"generate {M} {VEC} --coefficients=1,inf Hi", ("inf",)),
    ("generate-bad-coefficient-range", f"generate {M} {VEC} --coefficients 1:2 Hi", ("1:2",)),
    ("generate-unknown-operator", f"generate {M} {VEC} --operator twist Hi", ("twist",)),
    ("generate-unknown-positions", f"generate {M} {VEC} --positions middle Hi", ("middle",)),
    (
        "generate-vector-of-another-model",
        f"generate {M} --vector {{d}}/wide.safetensors --coefficients 1 Hi",
        ("wide.safetensors", "hidden size 48"),
    ),
    (
        "generate-nan-vector",
        f"generate {M} --vector {{d}}/nan.safetensors Hi",
        ("nan.safetensors",),
    ),
    ("generate-empty-raw-prompt", f"generate {M} --raw ''", ("prompt 1",)),
    ("generate-unknown-device", f"generate {M} {VEC} --device quantum Hi", ("quantum",)),
    ("generate-layers-without-vector", f"generate {M} --layers 1 Hi", ("--layers", "--vector")),
    (
        "generate-layer-out-of-range",
        f"generate {M} {VEC} --layers 5 --coefficients 1 Hi",
        ("layer 5",),
    ),
    (
        "generate-max-new-tokens-negative",
        f"generate {M} {VEC} --max-new-tokens -1 Hi",
        ("--max-new-tokens", "-1"),
    ),
    (
        "generate-negative-temperature",
        f"generate {M} {VEC} --temperature -1 Hi",
        ("--temperature", "-1"),
    ),
    # -- compare ----------------------------------------------------------------------------
    ("compare-one-vector", "compare {d}/vec.safetensors", ("two",)),
    (
        "compare-foreign-file",
        "compare {d}/vec.safetensors {d}/foreign.safetensors",
        ("foreign.safetensors",),
    ),
    (
        "compare-vectors-of-different-models",
        "compare {d}/vec.safetensors {d}/wide.safetensors -o {o}/cmp",
        ("wide", "hidden"),
    ),
    (
        "compare-output-under-a-file",
        "compare {d}/vec.safetensors {d}/vec.safetensors -o {d}/afile/cmp",
        ("afile",),
    ),
    # -- diff -------------------------------------------------------------------------------
    ("diff-no-inputs", "diff --base {m} --tuned {m} -o {o}/d.safetensors", ("--prompts",)),
    (
        "diff-unknown-method",
        "diff --base {m} --tuned {m} --prompts {d}/questions.txt --method median "
        "-o {o}/d.safetensors",
        ("median",),
    ),
    (
        "diff-missing-prompts",
        "diff --base {m} --tuned {m} --prompts {d}/nope.txt -o {o}/d.safetensors",
        ("nope.txt",),
    ),
    (
        "diff-chats-bad-role",
        "diff --base {m} --tuned {m} --chats {d}/chats_bad_role.jsonl -o {o}/d.safetensors",
        ("chats_bad_role.jsonl:2",),
    ),
    (
        "diff-models-of-different-size",
        "diff --base {m} --tuned {w} --prompts {d}/questions.txt -o {o}/d.safetensors",
        ("hidden",),
    ),
    (
        "diff-limit-zero",
        "diff --base {m} --tuned {m} --prompts {d}/questions.txt --limit 0 -o {o}/d.safetensors",
        ("--limit",),
    ),
    (
        "diff-output-under-a-file",
        "diff --base {m} --tuned {m} --prompts {d}/questions.txt -o {d}/afile/d.safetensors",
        ("afile",),
    ),
    # -- sweep ------------------------------------------------------------------------------
    ("sweep-nothing-to-measure", f"sweep {M} {VEC} -o {{o}}/run", ("--behavior",)),
    (
        "sweep-unknown-kind",
        f"sweep {M} {VEC} --behavior xyz:builtin:honesty_ab -o {{o}}/run",
        ("xyz",),
    ),
    (
        "sweep-unknown-aligned",
        f"sweep {M} {VEC} --behavior caa:builtin:honesty_ab --aligned sideways -o {{o}}/run",
        ("sideways",),
    ),
    (
        "sweep-ab-missing-field",
        f"sweep {M} {VEC} --behavior caa:{{d}}/ab_missing.json -o {{o}}/run",
        ("ab_missing.json", "answer_not_matching_behavior"),
    ),
    (
        "sweep-mmlu-bad-answer",
        f"sweep {M} {VEC} --helpfulness mmlu:{{d}}/mmlu_bad.csv -o {{o}}/run",
        ("mmlu_bad.csv:2",),
    ),
    (
        "sweep-perplexity-empty",
        f"sweep {M} {VEC} --perplexity {{d}}/empty.jsonl -o {{o}}/run",
        ("empty.jsonl",),
    ),
    (
        "sweep-coefficients-per-batch-zero",
        f"sweep {M} {VEC} --helpfulness mmlu:builtin:general_mc --coefficients-per-batch 0 "
        "-o {o}/run",
        ("--coefficients-per-batch",),
    ),
    (
        "sweep-samples-zero",
        f"sweep {M} {VEC} --helpfulness mmlu:builtin:general_mc --samples 0 -o {{o}}/run",
        ("--samples",),
    ),
    (
        "sweep-vector-of-another-model",
        f"sweep {M} --vector {{d}}/wide.safetensors --helpfulness mmlu:builtin:general_mc "
        "-o {o}/run",
        ("wide.safetensors", "hidden size 48"),
    ),
    (
        "matrix-vector-of-another-model",
        f"matrix {M} --vectors {{d}}/wide.safetensors --prompts {{d}}/questions.txt -o {{o}}/mx",
        ("wide.safetensors", "hidden size 48"),
    ),
    (
        "sweep-existing-output-other-settings",
        f"sweep {M} {VEC} --coefficients 0,2 --helpfulness mmlu:builtin:general_mc --limit 2 "
        "--no-estimates -o {d}/sweep_run",
        ("sweep_run",),
    ),
    (
        "sweep-output-under-a-file",
        f"sweep {M} {VEC} --helpfulness mmlu:builtin:general_mc --limit 2 -o {{d}}/afile/run",
        ("afile",),
    ),
    # -- matrix -----------------------------------------------------------------------------
    (
        "matrix-missing-vector",
        f"matrix {M} --vectors {{d}}/nope.safetensors --prompts {{d}}/questions.txt -o {{o}}/mx",
        ("nope.safetensors",),
    ),
    (
        "matrix-empty-prompts",
        f"matrix {M} --vectors {{d}}/vec.safetensors --prompts {{d}}/empty.jsonl -o {{o}}/mx",
        ("empty.jsonl",),
    ),
    (
        "matrix-no-vector",
        f"matrix {M} --vectors , --prompts {{d}}/questions.txt -o {{o}}/mx",
        ("vector",),
    ),
    (
        "matrix-nan-coefficient",
        f"matrix {M} --vectors {{d}}/vec.safetensors --prompts {{d}}/questions.txt "
        "--raw-coefficients 1,nan -o {o}/mx",
        ("nan",),
    ),
    (
        "matrix-single-layer-out-of-range",
        f"matrix {M} --vectors {{d}}/vec.safetensors --prompts {{d}}/questions.txt "
        "--single-layer 9 -o {o}/mx",
        ("9",),
    ),
    (
        "matrix-max-new-tokens-zero",
        f"matrix {M} --vectors {{d}}/vec.safetensors --prompts {{d}}/questions.txt "
        "--max-new-tokens 0 -o {o}/mx",
        ("--max-new-tokens",),
    ),
    # -- dataset qa / pairs -----------------------------------------------------------------
    (
        "dataset-qa-unknown-style",
        f"dataset qa {M} --questions {{d}}/questions.txt --style sarcastic -o {{o}}/qa.jsonl",
        ("sarcastic",),
    ),
    (
        "dataset-qa-negative-expand",
        f"dataset qa {M} --questions {{d}}/questions.txt --expand -2 -o {{o}}/qa.jsonl",
        ("--expand",),
    ),
    (
        "dataset-qa-binary-questions",
        f"dataset qa {M} --questions {{d}}/binary.jsonl -o {{o}}/qa.jsonl",
        ("binary.jsonl",),
    ),
    (
        "dataset-qa-output-under-a-file",
        f"dataset qa {M} --questions {{d}}/questions.txt -o {{d}}/afile/qa.jsonl",
        ("afile",),
    ),
    (
        "dataset-pairs-missing-file",
        "dataset pairs --honest {d}/nope.jsonl --deceptive {d}/deceptive.jsonl -o {o}/p.jsonl",
        ("nope.jsonl",),
    ),
    (
        "dataset-pairs-no-shared-question",
        "dataset pairs --honest {d}/honest.jsonl --deceptive {d}/deceptive.jsonl -o {o}/p.jsonl",
        ("honest.jsonl",),
    ),
    (
        "dataset-pairs-malformed-line",
        "dataset pairs --honest {d}/chats_bad_line3.jsonl --deceptive {d}/deceptive.jsonl "
        "-o {o}/p.jsonl",
        ("chats_bad_line3.jsonl:3",),
    ),
    # -- finetune ---------------------------------------------------------------------------
    (
        "finetune-malformed-line",
        f"finetune {M} --data {{d}}/chats_bad_line3.jsonl --max-steps 1 -o {{o}}/ft",
        ("chats_bad_line3.jsonl:3",),
    ),
    (
        "finetune-layers-and-target-modules",
        f"finetune {M} --data {{d}}/chats.jsonl --layers 1 --target-modules q_proj -o {{o}}/ft",
        ("--target-modules",),
    ),
    (
        "finetune-rank-zero",
        f"finetune {M} --data {{d}}/chats.jsonl --rank 0 -o {{o}}/ft",
        ("rank",),
    ),
    (
        "finetune-nan-learning-rate",
        f"finetune {M} --data {{d}}/chats.jsonl --lr nan -o {{o}}/ft",
        ("nan",),
    ),
    (
        "finetune-eval-fraction-above-one",
        f"finetune {M} --data {{d}}/chats.jsonl --eval-fraction 1.5 -o {{o}}/ft",
        ("1.5",),
    ),
    (
        "finetune-layer-out-of-range",
        f"finetune {M} --data {{d}}/chats.jsonl --layers 9 --max-steps 1 -o {{o}}/ft",
        ("layer 9",),
    ),
    (
        "finetune-train-layers-and-target-modules",
        f"finetune {M} --data {{d}}/chats.jsonl --train-layers 1 --target-modules q_proj "
        "-o {o}/ft",
        ("--train-layers", "--target-modules"),
    ),
    (
        "finetune-train-layer-out-of-range",
        f"finetune {M} --data {{d}}/chats.jsonl --train-layers 9 --max-steps 1 -o {{o}}/ft",
        ("layer 9",),
    ),
    (
        "finetune-layers-and-train-layers",
        f"finetune {M} --data {{d}}/chats.jsonl --layers 1 --train-layers 1 -o {{o}}/ft",
        ("--layers", "--train-layers"),
    ),
    (
        "finetune-output-under-a-file",
        f"finetune {M} --data {{d}}/chats.jsonl --max-steps 1 -o {{d}}/afile/ft",
        ("afile",),
    ),
    # -- tune -------------------------------------------------------------------------------
    ("tune-unknown-direction", f"tune {M} {VEC} --direction sideways -o {{o}}/rt", ("sideways",)),
    (
        "tune-nan-vector",
        f"tune {M} --vector {{d}}/nan.safetensors -o {{o}}/rt",
        ("nan.safetensors",),
    ),
    (
        "tune-vector-of-another-model",
        f"tune {M} --vector {{d}}/wide.safetensors -o {{o}}/rt",
        ("hidden size 48",),
    ),
    ("tune-unknown-positions", f"tune {M} {VEC} --positions middle -o {{o}}/rt", ("middle",)),
    (
        "tune-facts-bad-label",
        f"tune {M} {VEC} --data {{d}}/facts_bad.csv -o {{o}}/rt",
        ("facts_bad.csv:3",),
    ),
    (
        "tune-layer-weights-count",
        f"tune {M} {VEC} --layers 0-1 --layer-weights 1,2,3 -o {{o}}/rt",
        ("1,2,3",),
    ),
    ("tune-layer-out-of-range", f"tune {M} {VEC} --layers 3 -o {{o}}/rt", ("layer 3",)),
    ("tune-rep-layer-out-of-range", f"tune {M} {VEC} --rep-layers 3 -o {{o}}/rt", ("layer 3",)),
    (
        "tune-layers-and-rep-layers",
        f"tune {M} {VEC} --layers 1 --rep-layers 1 -o {{o}}/rt",
        ("--layers", "--rep-layers"),
    ),
    (
        "tune-train-layers-and-target-modules",
        f"tune {M} {VEC} --train-layers 1 --target-modules q_proj -o {{o}}/rt",
        ("--train-layers", "--target-modules"),
    ),
    ("tune-negative-rep-weight", f"tune {M} {VEC} --rep-weight -1 -o {{o}}/rt", ("--rep-weight",)),
    (
        "tune-bad-templates",
        f"tune {M} {VEC} --templates {{d}}/templates_bad.json -o {{o}}/rt",
        ("templates_bad.json",),
    ),
    # -- eval -------------------------------------------------------------------------------
    ("eval-unknown-suite", "eval --models {m} --suite creativity -o {o}/ev", ("creativity",)),
    (
        "eval-steered-bad-coefficient",
        "eval --models {m} --steered {m}:{d}/vec.safetensors:strong -o {o}/ev",
        ("strong",),
    ),
    (
        "eval-steered-nan-coefficient",
        "eval --models {m} --steered {m}:{d}/vec.safetensors:nan -o {o}/ev",
        ("nan",),
    ),
    (
        "eval-steered-truncated-vector",
        "eval --models {m} --steered {m}:{d}/truncated.safetensors:1 -o {o}/ev",
        ("truncated.safetensors",),
    ),
    ("eval-missing-facts-file", "eval --models {m} --facts {d}/nope.csv -o {o}/ev", ("nope.csv",)),
    ("eval-layers-all-without-vector", "eval --models {m} --layers all -o {o}/ev", ("--vector",)),
    (
        "eval-layer-out-of-range",
        "eval --models {m} --vector {d}/vec.safetensors --layers 5 -o {o}/ev",
        ("layer 5",),
    ),
    (
        "eval-negative-layer-without-vector",
        "eval --models {m} --layers=-1 -o {o}/ev",
        ("-1", "--vector"),
    ),
    ("eval-no-models", "eval --models , -o {o}/ev", ("models",)),
    ("eval-bootstrap-zero", "eval --models {m} --bootstrap 0 -o {o}/ev", ("--bootstrap",)),
    ("eval-limit-zero", "eval --models {m} --limit 0 -o {o}/ev", ("--limit",)),
    ("eval-output-under-a-file", "eval --models {m} -o {d}/afile/ev", ("afile",)),
]


def split_args(text: str, places: dict[str, str]) -> list[str]:
    """Split a case's argument text on spaces ('' is an empty argument) and fill places."""
    return ["" if part == "''" else part.format(**places) for part in text.split()]


@pytest.mark.parametrize(("args", "needles"), [pytest.param(a, n, id=i) for i, a, n in CASES])
def test_bad_input(
    args: str,
    needles: tuple[str, ...],
    models: dict[str, Path],
    fixtures: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    places = {"m": str(models["m"]), "w": str(models["w"]), "d": str(fixtures), "o": str(work)}
    before = snapshot(work, fixtures, models["m"], models["w"])
    result = invoke(split_args(args, places))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle.format(**places) in lines[0], lines[0]
    assert snapshot(work, fixtures, models["m"], models["w"]) == before


def test_catalogue_size() -> None:
    assert len(CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)


# -- a command line that does not parse: one line too, click's exit code 2 -----------------

USAGE_CASES = [
    (
        "wrong-typed-option",
        "extract --pairs {d}/pairs.jsonl --limit many -o {o}/v.safetensors",
        ("--limit",),
    ),
    ("missing-required-option", "extract --model {m} -o {o}/v.safetensors", ("--pairs",)),
    ("unknown-option", "generate --model {m} --colour red Hi", ("--colour",)),
    ("unknown-command", "extrakt --model {m}", ("extrakt",)),
    ("option-without-value", "dataset qa --questions {d}/questions.txt --style", ("--style",)),
]


@pytest.mark.parametrize(("args", "needles"), [pytest.param(a, n, id=i) for i, a, n in USAGE_CASES])
def test_usage_error_is_one_line(
    args: str, needles: tuple[str, ...], models: dict[str, Path], fixtures: Path, tmp_path: Path
) -> None:
    places = {"m": str(models["m"]), "d": str(fixtures), "o": str(tmp_path)}
    result = invoke(split_args(args, places))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []


# -- inputs accepted on purpose -----------------------------------------------------------


def test_negative_layer_counts_from_the_end(
    models: dict[str, Path], fixtures: Path, tmp_path: Path
) -> None:
    out = tmp_path / "last.safetensors"
    result = invoke(
        [
            "extract",
            "--model",
            str(models["m"]),
            "--pairs",
            str(fixtures / "pairs.jsonl"),
            "--layers=-1",
            "-o",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.output
    assert SteeringVector.load(out).layers == (2,)  # the tiny model has 3 layers
    vector = SteeringVector.load(fixtures / "vec.safetensors")
    assert eval_layers("-1", vector, "unused") == (2,)
    assert eval_layers("-2--1", vector, "unused") == (1, 2)


# -- unexpected exceptions (bugs) ---------------------------------------------------------


def _break_vector_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the safetensors writer fail half-way: it writes a partial file, then raises."""

    def half_write(tensors: Any, filename: str, metadata: Any = None) -> None:
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("writer broke\nat byte 7")

    monkeypatch.setattr("steerlab.vector.save_file", half_write)


def _extract_args(models: dict[str, Path], fixtures: Path, out: Path) -> list[str]:
    return [
        "extract",
        "--model",
        str(models["m"]),
        "--pairs",
        str(fixtures / "pairs.jsonl"),
        "--method",
        "mean_diff",
        "-o",
        str(out),
    ]


def test_internal_error_is_one_line_and_leaves_no_file(
    models: dict[str, Path], fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_vector_writer(monkeypatch)
    monkeypatch.delenv("STEERLAB_DEBUG", raising=False)
    result = invoke(_extract_args(models, fixtures, tmp_path / "v.safetensors"))
    assert result.exit_code == EXIT_INTERNAL == 70
    assert "Traceback" not in result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: internal error (BUG) RuntimeError: writer broke at byte 7")
    assert ISSUE_TRACKER in lines[0]
    assert "--debug" in lines[0] and "STEERLAB_DEBUG=1" in lines[0]
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file


@pytest.mark.parametrize("how", ["option", "environment"])
def test_debug_shows_the_traceback(
    how: str,
    models: dict[str, Path],
    fixtures: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _break_vector_writer(monkeypatch)
    monkeypatch.delenv("STEERLAB_DEBUG", raising=False)
    args = _extract_args(models, fixtures, tmp_path / "v.safetensors")
    if how == "option":
        result = invoke(["--debug", *args])
    else:
        result = invoke(args, env={"STEERLAB_DEBUG": "1"})
    assert result.exit_code == EXIT_INTERNAL
    assert "Traceback (most recent call last)" in result.stderr
    assert "half_write" in result.stderr
    last = error_lines(result)[-1]
    assert last.startswith("error: internal error (BUG) RuntimeError: writer broke")
    assert "rerun with --debug" not in last
    assert list(tmp_path.iterdir()) == []


def test_debug_off_again_on_the_next_run(
    models: dict[str, Path], fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEERLAB_DEBUG", raising=False)
    assert invoke(["--debug", "info", str(fixtures / "nope.safetensors")]).exit_code == 1
    result = invoke(["info", str(fixtures / "nope.safetensors")], env={"STEERLAB_DEBUG": "0"})
    assert result.exit_code == 1
    assert len(error_lines(result)) == 1
    assert "Traceback" not in result.output


def test_bad_input_under_debug_keeps_exit_code_1(fixtures: Path) -> None:
    result = invoke(["--debug", "info", str(fixtures / "nan.safetensors")])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert error_lines(result)[-1].startswith("error: ")


def test_os_error_on_a_named_file_is_a_one_line_user_error(
    fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(self: Any, out_dir: Any) -> list[Path]:
        raise OSError(28, "No space left on device", str(Path(out_dir) / "cosine.csv"))

    from steerlab.extract.comparison import Comparison

    monkeypatch.setattr(Comparison, "save", full_disk)
    vec = str(fixtures / "vec.safetensors")
    result = invoke(["compare", vec, vec, "-o", str(tmp_path / "cmp")])
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"error: {tmp_path / 'cmp' / 'cosine.csv'}: No space left on device"
    assert list(tmp_path.iterdir()) == []
