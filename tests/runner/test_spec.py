"""Spec validation (:mod:`steerlab.runner.spec`): every way to get a spec wrong is ONE line,
``FILE:LINE: key.path: message``, raised before anything runs; and the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bad_specs import SCHEMA_ERRORS, assert_error, spec_error

from steerlab.runner import json_schema, plan_experiment
from steerlab.runner.spec import spec_model, stage_models


@pytest.mark.parametrize(
    ("line", "key", "message", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in SCHEMA_ERRORS],
)
def test_invalid_spec_is_one_line(
    tmp_path: Path, line: int, key: str | None, message: str, text: str
) -> None:
    file, error = spec_error(tmp_path, text)
    assert_error(error, file, line, key, message)


@pytest.mark.parametrize("kind", sorted(stage_models()))
def test_an_unknown_key_lists_the_keys_of_its_stage_kind(tmp_path: Path, kind: str) -> None:
    fields = stage_models()[kind].model_fields
    required = [n for n, field in fields.items() if field.is_required() and n != "kind"]
    given = "".join(f"    {n}: {'[x]' if n == 'models' else 'x'}\n" for n in required)
    text = f"stages:\n  s:\n    kind: {kind}\n{given}    bogus_key: 1\n"
    file, error = spec_error(tmp_path, text)
    assert_error(error, file, 4 + len(required), "stages.s.bogus_key", "unknown key for a")
    assert f" {kind} stage (expected one of: " in error
    assert ", ".join(stage_models()[kind].model_fields) + ")" in error


# -- what the first problem is, and how many more -------------------------------------------


def test_the_first_problem_in_file_order_and_a_count_of_the_rest(tmp_path: Path) -> None:
    text = "stages:\n  a:\n    kind: extract\n    pairs: x\n    batch_size: y\n    limit: z\n"
    file, error = spec_error(tmp_path, text)
    assert error == (
        f"{file}:5: stages.a.batch_size: Input should be a valid integer (got 'y')"
        " (and 1 more problem)"
    )
    text = text.replace("    kind: extract\n", "    kind: extract\n    bogus: 1\n")
    file, error = spec_error(tmp_path, text)
    assert error.startswith(f"{file}:4: stages.a.bogus: unknown key")
    assert error.endswith(" (and 2 more problems)")


def test_a_valid_spec_fills_in_the_defaults(tmp_path: Path) -> None:
    file = tmp_path / "spec.yaml"
    file.write_text(
        "models:\n  base: default\nstages:\n"
        "  mood: {kind: extract, model: base, pairs: builtin:happy_sad}\n"
        "  gen: {kind: generate, model: base, vector: mood, prompts: hi,"
        " coefficients: [-1, 0, 2.5]}\n",
        encoding="utf-8",
    )
    plan = plan_experiment(file)
    assert plan.stage("mood").settings["method"] == "pca_diff"  # the command's default
    assert plan.stage("gen").settings["prompts"] == ["hi"]  # one text: a list of one
    assert plan.stage("gen").settings["coefficients"] == "-1,0,2.5"  # as the CLI writes it


@pytest.mark.parametrize("value", ["[0, .nan]", ".inf", "[-.inf, 1]"])
def test_non_finite_number_in_a_text_setting(tmp_path: Path, value: str) -> None:
    text = f"stages:\n  gen:\n    kind: generate\n    prompts: hi\n    coefficients: {value}\n"
    file, error = spec_error(tmp_path, text)
    assert_error(error, file, 5, "stages.gen.coefficients", "")
    assert "is not a finite number" in error


def test_messages_are_the_specs_words_not_pydantics(tmp_path: Path) -> None:
    text = "stages:\n  gen:\n    kind: generate\n    prompts: hi\n    coefficients: .nan\n"
    _, error = spec_error(tmp_path, text)
    assert "Value error" not in error


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        pytest.param("stages:\n  a:\n    kind: extract\n    pair: x.jsonl\n", 4,
                     "stages.a.pair", id="stage-key"),
        pytest.param("stage:\n  a: {kind: extract, pairs: x.jsonl}\n", 1, "stage",
                     id="top-level-key"),
    ],
)  # fmt: skip
def test_a_misspelt_key_is_reported_rather_than_the_key_it_misses(
    tmp_path: Path, text: str, line: int, key: str
) -> None:
    file, error = spec_error(tmp_path, text)
    assert_error(error, file, line, key, "unknown key")


# -- the JSON Schema ----------------------------------------------------------------------------


def test_schema_is_json_with_a_definition_per_stage_kind() -> None:
    schema = json.loads(json.dumps(json_schema(), allow_nan=False))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["stages"]
    assert {"name", "seed", "models", "stages"} <= set(schema["properties"])
    stage = schema["properties"]["stages"]["additionalProperties"]
    assert stage["discriminator"]["propertyName"] == "kind"
    mapping = stage["discriminator"]["mapping"]
    assert set(mapping) == set(stage_models())
    for kind, reference in mapping.items():
        definition = schema["$defs"][reference.removeprefix("#/$defs/")]
        assert definition["properties"]["kind"]["const"] == kind
        assert definition["additionalProperties"] is False
        assert set(definition["properties"]) == set(stage_models()[kind].model_fields)
    extract = schema["$defs"]["ExtractStage"]
    assert "pairs" in extract["required"]
    assert extract["properties"]["pairs"]["description"]  # the option's help text
    assert extract["properties"]["batch_size"]["default"] == 16  # the command's default


def test_schema_is_the_spec_models_schema() -> None:
    assert json_schema()["properties"] == spec_model().model_json_schema()["properties"]


def schema_problems(value: object, schema: dict, root: dict, where: str = "") -> list[str]:
    """What a small JSON Schema checker (the keywords pydantic writes) finds wrong with
    ``value``: ``jsonschema`` is not a dependency, and editors read the same keywords."""
    if "$ref" in schema:
        return schema_problems(value, root["$defs"][schema["$ref"].split("/")[-1]], root, where)
    discriminator = schema.get("discriminator")
    if discriminator and isinstance(value, dict):
        tag = value.get(discriminator["propertyName"])
        if tag not in discriminator["mapping"]:
            return [f"{where}: {discriminator['propertyName']} {tag!r} is not known"]
        chosen = {"$ref": discriminator["mapping"][tag]}
        return schema_problems(value, chosen, root, where)
    for union in ("anyOf", "oneOf"):
        if union in schema:
            found = [schema_problems(value, option, root, where) for option in schema[union]]
            good = sum(not problems for problems in found)
            if good == 0 or (union == "oneOf" and good > 1):
                return [f"{where}: {union} ({good} options match): {found}"]
            return []
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
             "array": list, "object": dict, "null": type(None)}  # fmt: skip
    kind = schema.get("type")
    if kind is not None:
        allowed = kind if isinstance(kind, list) else [kind]
        if not any(
            isinstance(value, types[k]) and not (isinstance(value, bool) and k != "boolean")
            for k in allowed
        ):
            return [f"{where}: {value!r} is not {kind}"]
    if "const" in schema and value != schema["const"]:
        return [f"{where}: {value!r} != {schema['const']!r}"]
    problems: list[str] = []
    if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
        problems.append(f"{where}: {value!r} <= {schema['exclusiveMinimum']}")
    if "minimum" in schema and not value >= schema["minimum"]:
        problems.append(f"{where}: {value!r} < {schema['minimum']}")
    if isinstance(value, list) and len(value) < schema.get("minItems", 0):
        problems.append(f"{where}: fewer than {schema['minItems']} items")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += schema_problems(item, schema["items"], root, f"{where}.{index}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [f"{where}.{key}: required" for key in schema.get("required", [])
                     if key not in value]  # fmt: skip
        for key, item in value.items():
            if key in properties:
                problems += schema_problems(item, properties[key], root, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}.{key}: not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                extra = schema["additionalProperties"]
                problems += schema_problems(item, extra, root, f"{where}.{key}")
    return problems


def test_the_schema_checker_catches_mistakes() -> None:
    schema = json_schema()
    good = {"models": {"base": "default"},
            "stages": {"v": {"kind": "extract", "model": "base", "pairs": "a.jsonl"}}}  # fmt: skip
    assert schema_problems(good, schema, schema) == []
    for bad in (
        {"stages": {"v": {"kind": "extract"}}},  # pairs missing
        {"stages": {"v": {"kind": "extract", "pairs": "a", "limit": "ten"}}},
        {"stages": {"v": {"kind": "extract", "pairs": "a", "bogus": 1}}},
        {"stages": {"v": {"kind": "nope"}}},
        {"stages": {}, "extra": 1},
        {"models": {"m": {"dtype": "float32"}}, "stages": {}},
    ):
        assert schema_problems(bad, schema, schema), bad


STRICT_SPEC = """\
name: study
seed: 3
models:
  base: default
  big: {source: some/hub-model, dtype: bfloat16, device: cuda}
stages:
  mood: {kind: extract, model: base, pairs: builtin:happy_sad, layers: "1,2", limit: 8}
  gen: {kind: generate, model: base, vector: mood, prompts: [hi], coefficients: "-1,0,1"}
  cmp: {kind: compare, vectors: [mood, mood]}
  sw: {kind: sweep, model: base, vector: mood, behavior: ["pairs:builtin:happy_sad"],
       temperature: 0.5, estimates: false}
  ft: {kind: finetune, model: big, data: chats.jsonl, max_steps: 2, lr: 0.001}
  ev:
    kind: eval
    models: {base: base, tuned: ft}
    steered: [{model: base, vector: mood, coefficient: 2, label: steered}]
"""


def test_a_spec_written_to_the_schema_validates_both_ways(tmp_path: Path) -> None:
    import yaml

    file = tmp_path / "spec.yaml"
    file.write_text(STRICT_SPEC, encoding="utf-8")
    plan_experiment(file)  # the runner takes it
    schema = json_schema()
    assert schema_problems(yaml.safe_load(STRICT_SPEC), schema, schema) == []


@pytest.mark.parametrize(
    "stage",
    [
        pytest.param({"kind": "extract", "pairs": "a", "layers": [12, 14]}, id="layers-list"),
        pytest.param({"kind": "extract", "pairs": "a", "layers": 3}, id="layers-number"),
        pytest.param({"kind": "generate", "prompts": "hello"}, id="prompts-text"),
        pytest.param({"kind": "generate", "prompts": ["hi"], "coefficients": [-1, 0, 1]},
                     id="coefficients-list"),
        pytest.param({"kind": "compare", "vectors": "v"}, id="vectors-text"),
        pytest.param({"kind": "sweep", "vector": "v", "behavior": "pairs:a.jsonl",
                      "coefficients": "-1:1:3", "limit": 4}, id="sweep"),
    ],
)  # fmt: skip
def test_what_the_runner_takes_the_schema_takes(tmp_path: Path, stage: dict) -> None:
    import yaml

    data = {"stages": {"v": {"kind": "extract", "pairs": "b"}, "s": stage}}
    file = tmp_path / "spec.yaml"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    plan_experiment(file)  # valid for the runner...
    schema = json_schema()
    assert schema_problems(data, schema, schema) == []  # ...so valid for an editor


def test_a_number_in_scientific_notation_is_a_number(tmp_path: Path) -> None:
    file = tmp_path / "spec.yaml"
    file.write_text(
        "stages:\n  ft:\n    kind: finetune\n    data: chats.jsonl\n    lr: 1e-4\n",
        encoding="utf-8",
    )
    assert plan_experiment(file).stage("ft").settings["lr"] == 1e-4


def test_the_schema_is_the_same_every_time_and_fields_keep_their_own_defaults() -> None:
    # pydantic < 2.7 writes a field's default into a schema dict it was handed: a shared one
    # leaked 'layers: all' into 'pairs', which has no default.
    first = json.dumps(json_schema(), sort_keys=True)
    assert json.dumps(json_schema(), sort_keys=True) == first
    extract = json.loads(first)["$defs"]["ExtractStage"]
    assert "default" not in extract["properties"]["pairs"] and "pairs" in extract["required"]
    assert extract["properties"]["layers"]["default"] == "all"
