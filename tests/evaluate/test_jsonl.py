"""steerlab.evaluate.jsonl: the one reader and writer of result rows (sweep, suite, matrix)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from steerlab.errors import DataError
from steerlab.evaluate import MatrixRow, SuiteRow, SweepRow
from steerlab.evaluate.jsonl import read_rows, write_lines, write_rows

SWEEP = [
    SweepRow("ab", "behavior", "B_likelihood", -1.0, -0.25, -0.5, 0.0, 10),
    SweepRow("ab", "behavior", "B_likelihood", 1.0, 0.5, 0.25, 0.75, 10),
]
SUITE = [SuiteRow("m", "tf_auroc", "facts", float("nan"), 0.1, 0.9, 4, {"x": [1.5]})]
MATRIX = [MatrixRow("v", "add", "raw", "all", 2.0, "Hi?", "Hello.", 1, 3.5)]


@pytest.mark.parametrize(
    ("rows", "row_type"), [(SWEEP, SweepRow), (SUITE, SuiteRow), (MATRIX, MatrixRow)]
)
def test_every_row_type_round_trips(tmp_path: Path, rows, row_type) -> None:
    path = write_rows(tmp_path / "results.jsonl", rows)
    assert path == tmp_path / "results.jsonl"
    text = path.read_text(encoding="utf-8")
    assert text == "".join(row.to_json() + "\n" for row in rows)
    back = read_rows(path, row_type.from_json)
    assert [r.to_json() for r in back] == [r.to_json() for r in rows]


def test_blank_lines_are_skipped_and_nan_survives(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("\n" + SUITE[0].to_json() + "\n\n", encoding="utf-8")
    (row,) = read_rows(path, SuiteRow.from_json)
    assert math.isnan(row.value) and row.extra == {"x": [1.5]}


@pytest.mark.parametrize(
    ("row_type", "bad", "message"),
    [
        (SweepRow, "{not json", "invalid JSON"),
        (SweepRow, '{"task": "ab"}', "missing field"),
        (SuiteRow, "[1, 2]", "expected a JSON object"),
        (MatrixRow, '{"vector": "v"}', "not a steering-matrix row"),
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path: Path, row_type, bad, message) -> None:
    path = tmp_path / "results.jsonl"
    good = {SweepRow: SWEEP[0], SuiteRow: SUITE[0], MatrixRow: MATRIX[0]}[row_type].to_json()
    path.write_text(f"{good}\n\n{bad}\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}:3: {message}"):
        read_rows(path, row_type.from_json)


def test_missing_and_binary_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_rows(tmp_path / "nope.jsonl", SweepRow.from_json)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataError, match="not UTF-8"):
        read_rows(binary, SweepRow.from_json)


def test_writing_is_atomic(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "x.jsonl", ["a", "b"])
    assert path.read_text(encoding="utf-8") == "a\nb\n"

    def failing():
        yield "c"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_lines(path, failing())
    assert path.read_text(encoding="utf-8") == "a\nb\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]  # no temporary left behind
