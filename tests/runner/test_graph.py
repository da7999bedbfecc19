"""The stage graph (:mod:`steerlab.runner.graph`): references checked against what exists and
what it makes, cycles refused, stages ordered after what they read, and content keys that
change exactly when a stage's output could (its settings, its inputs' keys, its models, its
data files, the steerlab version) and never otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bad_specs import GRAPH_ERRORS, assert_error, spec_error
from specs import write_pairs, write_spec

from steerlab.runner import Plan, plan_experiment

# -- references and cycles --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key", "message", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in GRAPH_ERRORS],
)
def test_invalid_reference_is_one_line(
    tmp_path: Path, line: int, key: str | None, message: str, text: str
) -> None:
    file, error = spec_error(tmp_path, text)
    assert_error(error, file, line, key, message)


def test_known_models_are_only_models(tmp_path: Path) -> None:
    text = (
        "models:\n  base: default\nstages:\n"
        "  v: {kind: extract, model: base, pairs: a.jsonl}\n"
        "  ft: {kind: finetune, model: base, data: chats.jsonl}\n"
        "  gen: {kind: generate, model: bsae, prompts: hi}\n"
    )
    file, error = spec_error(tmp_path, text)
    assert_error(error, file, 6, "stages.gen.model", "no model called 'bsae' (known: base, ft)")
    # Nothing to offer: said so.
    _, error = spec_error(tmp_path, "stages:\n  gen: {kind: generate, model: m, prompts: hi}\n")
    assert error.endswith("no model called 'm' (known: none)")


# -- order --------------------------------------------------------------------------------------

STUDY: dict[str, dict[str, Any]] = {
    # Listed out of order on purpose: each stage must still run after what it reads.
    "sweep": {"kind": "sweep", "model": "tuned", "vector": "mood", "coefficients": "-1,0,1"},
    "tuned": {"kind": "finetune", "model": "base", "data": "chats.jsonl", "max_steps": 2},
    "mood": {"kind": "extract", "model": "base", "pairs": "pairs.jsonl"},
    "happy": {"kind": "extract", "model": "other", "pairs": "builtin:happy_sad", "seed": 0},
    "cmp": {"kind": "compare", "vectors": ["mood", "happy"]},
    "gen": {"kind": "generate", "model": "base", "vector": "happy", "prompts": ["hi"]},
}
MODELS: dict[str, Any] = {"base": "default", "other": {"source": "default", "dtype": "float32"}}


def plan_of(folder: Path, stages: dict[str, dict[str, Any]] | None = None, **top: Any) -> Plan:
    """Plan :data:`STUDY` (or ``stages``) written in ``folder`` (with its data files)."""
    if not (folder / "pairs.jsonl").exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_pairs(folder / "pairs.jsonl")
        (folder / "chats.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    models = top.pop("models", MODELS)
    return plan_experiment(write_spec(folder / "spec.yaml", stages or STUDY, models, **top))


def keys(plan: Plan) -> dict[str, str]:
    return {node.name: node.key for node in plan.stages}


def changed(before: Plan, after: Plan) -> set[str]:
    """The stages whose key differs."""
    old, new = keys(before), keys(after)
    return {name for name in new if old.get(name) != new[name]}


def with_setting(stage: str, **settings: Any) -> dict[str, dict[str, Any]]:
    """:data:`STUDY` with ``settings`` changed in ``stage``."""
    return {**STUDY, stage: {**STUDY[stage], **settings}}


def test_stages_run_after_what_they_read(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    order = [node.name for node in plan.stages]
    assert order == ["tuned", "mood", "sweep", "happy", "cmp", "gen"]
    for index, node in enumerate(plan.stages):
        assert set(node.depends_on) <= set(order[:index])
    assert plan.stage("sweep").depends_on == ("tuned", "mood")
    assert plan.stage("sweep").models == ()  # its model is a stage's
    assert plan.stage("tuned").models == ("base",)
    assert plan.stage("cmp").depends_on == ("mood", "happy")
    assert plan.upstream(["sweep"]) == ["tuned", "mood", "sweep"]
    assert plan.upstream(["gen", "cmp"]) == ["mood", "happy", "cmp", "gen"]


def test_keys_and_folders(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert len(set(keys(plan).values())) == len(plan.stages)
    for node in plan.stages:
        assert len(node.key) == 64 and int(node.key, 16) >= 0
        assert node.folder == f"stages/{node.name}-{node.key[:12]}"
    assert plan_of(tmp_path).stages == plan.stages  # deterministic
    assert plan.base_dir == tmp_path.resolve()


def test_the_spec_seed_is_every_stage_seed_unless_it_sets_its_own(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, seed=7)
    assert plan.stage("mood").settings["seed"] == 7
    assert plan.stage("happy").settings["seed"] == 0  # its own
    assert "seed" not in plan.stage("cmp").settings  # compare has none
    assert changed(plan_of(tmp_path), plan) == {"tuned", "mood", "sweep", "gen", "cmp"}


# -- what changes a key, and what does not -------------------------------------------------------


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        pytest.param(with_setting("gen", max_new_tokens=5), {"gen"}, id="gen-tokens"),
        pytest.param(with_setting("mood", limit=2), {"mood", "sweep", "cmp"}, id="mood-limit"),
        pytest.param(with_setting("tuned", max_steps=3), {"tuned", "sweep"}, id="finetune-steps"),
        pytest.param(with_setting("happy", seed=1), {"happy", "cmp", "gen"}, id="own-seed"),
        pytest.param(with_setting("cmp", vectors=["happy", "mood"]), {"cmp"}, id="ref-order"),
        pytest.param(with_setting("gen", vector="mood"), {"gen"}, id="other-vector"),
        pytest.param(with_setting("sweep", model="base"), {"sweep"}, id="other-model"),
        pytest.param(with_setting("mood", note="changed"), set(), id="note"),
        pytest.param(with_setting("mood", method="pca_diff"), set(), id="default-given"),
        pytest.param(with_setting("gen", prompts="hi"), set(), id="one-text-as-list"),
        pytest.param(with_setting("sweep", coefficients=[-1, 0, 1]), set(), id="list-as-text"),
    ],
)
def test_a_change_rekeys_the_stage_and_what_reads_it(
    tmp_path: Path, stages: dict[str, dict[str, Any]], expected: set[str]
) -> None:
    assert changed(plan_of(tmp_path), plan_of(tmp_path, stages)) == expected


def test_model_settings_rekey_the_stages_that_load_it(tmp_path: Path) -> None:
    before = plan_of(tmp_path)
    other = {"source": "default", "dtype": "bfloat16"}
    assert changed(before, plan_of(tmp_path, models={**MODELS, "other": other})) == {
        "happy",
        "cmp",
        "gen",
    }
    assert changed(before, plan_of(tmp_path, models={**MODELS, "base": "some/model"})) == {
        "tuned",
        "mood",
        "sweep",
        "cmp",
        "gen",
    }


def test_name_description_order_and_formatting_do_not_rekey(tmp_path: Path) -> None:
    before = plan_of(tmp_path)
    reordered = dict(reversed(list(STUDY.items())))
    assert changed(before, plan_of(tmp_path, reordered, name="x", description="y")) == set()
    # The same spec by hand, in flow style, with comments.
    text = (tmp_path / "spec.yaml").read_text(encoding="utf-8")
    import yaml

    data = yaml.safe_load(text)
    flow = "# a comment\n" + yaml.safe_dump(data, default_flow_style=True, width=60)
    (tmp_path / "spec.yaml").write_text(flow, encoding="utf-8")
    assert changed(before, plan_experiment(tmp_path / "spec.yaml")) == set()


def test_a_stage_keeps_its_key_wherever_the_spec_lives(tmp_path: Path) -> None:
    first = plan_of(tmp_path / "a")  # models 'default': nothing machine-specific
    second = plan_of(tmp_path / "elsewhere" / "b")
    assert keys(first) == keys(second)


def test_the_steerlab_version_is_in_every_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import steerlab.runner.graph as graph

    before = plan_of(tmp_path)
    monkeypatch.setattr(graph, "library_version", lambda: "999.0")
    assert changed(before, plan_of(tmp_path)) == {node.name for node in before.stages}


# -- data files ------------------------------------------------------------------------------


def test_editing_a_data_file_rekeys_the_stages_that_read_it(tmp_path: Path) -> None:
    before = plan_of(tmp_path)
    write_pairs(tmp_path / "pairs.jsonl", [{"positive": "Yes!", "negative": "No."}])
    assert changed(before, plan_of(tmp_path)) == {"mood", "sweep", "cmp"}
    (tmp_path / "chats.jsonl").write_text("{}\n", encoding="utf-8")
    assert changed(before, plan_of(tmp_path)) == {"mood", "sweep", "cmp", "tuned"}


def test_data_hashes_cover_the_forms_a_setting_names_a_file(tmp_path: Path) -> None:
    from steerlab.runner.graph import data_hashes

    write_pairs(tmp_path / "pairs.jsonl")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ab.json").write_text("[]\n", encoding="utf-8")
    settings = {
        "pairs": "pairs.jsonl",
        "behavior": ["mood=pairs:data/ab.json", "caa:builtin:honesty_ab"],
        "data": str(tmp_path / "data" / "ab.json"),  # absolute
        "folder": "data",  # folders are not hashed
        "missing": "nothing.jsonl",
        "number": 3,
    }
    hashes = data_hashes(settings, tmp_path)
    assert set(hashes) == {"pairs.jsonl", "data/ab.json", str(tmp_path / "data" / "ab.json")}
    assert all(len(value) == 64 for value in hashes.values())


def test_editing_a_sliced_data_file_rekeys(tmp_path: Path) -> None:
    stages = with_setting("mood", pairs="pairs.jsonl[:2]")
    stages["sweep"] = {**STUDY["sweep"], "behavior": ["held_out=pairs:pairs.jsonl[2:]"]}
    before = plan_of(tmp_path, stages)
    write_pairs(tmp_path / "pairs.jsonl", [{"positive": "Yes!", "negative": "No."}] * 2)
    assert changed(before, plan_of(tmp_path, stages)) == {"mood", "sweep", "cmp"}


def test_the_order_of_an_eval_stages_models_is_in_its_key(tmp_path: Path) -> None:
    def eval_stage(*labels: str) -> dict[str, dict[str, Any]]:
        return {"ev": {"kind": "eval", "models": {label: "base" for label in labels}}}

    before = plan_of(tmp_path, eval_stage("first", "second"))
    assert changed(before, plan_of(tmp_path, eval_stage("second", "first"))) == {"ev"}
