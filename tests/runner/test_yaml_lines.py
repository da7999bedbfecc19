"""YAML loading with line numbers (:mod:`steerlab.runner.yaml_lines`): every key and list item
keeps its line, and what plain YAML would silently accept or mangle is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from steerlab.errors import SpecError
from steerlab.runner.yaml_lines import load_yaml, parse_yaml

TEXT = """\
# a comment
name: demo
models:
  base: default
stages:
  mood:
    kind: extract
    pairs: builtin:happy_sad
    layers: [1, 2]
  gen:
    kind: generate
    prompts:
      - hello
      - how are you?
"""


def test_data_is_what_safe_load_reads(tmp_path: Path) -> None:
    import yaml

    located = parse_yaml(TEXT, tmp_path / "s.yaml")
    assert located.data == yaml.safe_load(TEXT)
    assert located.text == TEXT


def test_every_key_and_item_has_its_line(tmp_path: Path) -> None:
    located = parse_yaml(TEXT, tmp_path / "s.yaml")
    assert located.lines[("name",)] == 2
    assert located.lines[("models", "base")] == 4
    assert located.lines[("stages", "mood")] == 6
    assert located.lines[("stages", "mood", "layers")] == 9
    assert located.lines[("stages", "mood", "layers", 1)] == 9
    assert located.lines[("stages", "gen", "prompts", 0)] == 13
    assert located.lines[("stages", "gen", "prompts", 1)] == 14


def test_line_of_falls_back_to_the_nearest_ancestor(tmp_path: Path) -> None:
    located = parse_yaml(TEXT, tmp_path / "s.yaml")
    assert located.line_of(("stages", "gen", "max_new_tokens")) == 10  # missing: its stage
    assert located.line_of(("nothing", "here")) == 1
    assert located.line_of(()) == 1


def test_error_names_file_line_and_key_path(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    located = parse_yaml(TEXT, file)
    error = located.error(("stages", "gen", "prompts", 1), "too long")
    assert isinstance(error, SpecError)
    assert str(error) == f"{file}:14: stages.gen.prompts.1: too long"
    assert str(located.error((), "bad")) == f"{file}:1: bad"


def test_load_yaml_reads_the_file(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text(TEXT, encoding="utf-8")
    located = load_yaml(file)
    assert located.path == file
    assert located.lines[("stages", "gen")] == 10


def test_missing_file(tmp_path: Path) -> None:
    file = tmp_path / "absent.yaml"
    with pytest.raises(SpecError, match=r"absent\.yaml: no such spec file$"):
        load_yaml(file)


def test_undecodable_file(tmp_path: Path) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match=r"latin1\.yaml: cannot read the spec"):
        load_yaml(file)


def test_a_folder_is_not_a_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_yaml(tmp_path)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param("a: 1\nb: [1, 2\nc: 3\n", 3, "not valid YAML: expected ',' or ']'", id="flow"),
        pytest.param("a: 1\nb:\n\t- 1\n", 3, "not valid YAML: found character '\\t'", id="tab"),
        pytest.param("a: 1\nb: 'open\n", 3, "not valid YAML: found unexpected end", id="quote"),
        pytest.param("a: 1\n  b: 2\n", 2, "not valid YAML: mapping values", id="indent"),
        pytest.param("a: *nowhere\n", 1, "not valid YAML: found undefined alias", id="alias"),
        pytest.param("a: 1\na: 2\n", 2, "a: duplicate key", id="duplicate"),
        pytest.param("s:\n  x:\n    k: 1\n    k: 2\n", 4, "s.x.k: duplicate key", id="deep-dup"),
        pytest.param("s:\n  - {k: 1, k: 2}\n", 2, "s.0.k: duplicate key", id="dup-in-list"),
        pytest.param("1: a\n", 1, "key 1 must be text", id="int-key"),
        pytest.param("a: 1\nnull: 2\n", 2, "key None must be text", id="null-key"),
        pytest.param("? [a, b]\n: 1\n", 1, "expected a plain value here", id="list-key"),
        pytest.param("b: &x {k: 1}\nc:\n  <<: *x\n", 3, "merge keys (<<) are not", id="merge"),
        pytest.param("", 1, "expected one YAML document (a mapping), found 0", id="empty"),
        pytest.param("# only a comment\n", 1, "found 0", id="comment-only"),
        pytest.param("---\n", 2, "the spec must be a mapping", id="null-document"),
        pytest.param("a: 1\n---\nb: 2\n", 1, "found 2", id="two-documents"),
        pytest.param("- a\n- b\n", 1, "the spec must be a mapping of keys", id="list"),
        pytest.param("\n\nhello\n", 3, "the spec must be a mapping of keys", id="scalar"),
    ],
)
def test_one_line_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    file = tmp_path / "bad.yaml"
    with pytest.raises(SpecError) as caught:
        parse_yaml(text, file)
    error = str(caught.value)
    assert "\n" not in error
    assert error.startswith(f"{file}:{line}: "), error
    assert message in error
