"""SuiteResult: rows, the Markdown/CSV tables, the terminal table and the text summary."""

from __future__ import annotations

import math
import warnings

import pytest
from rich.table import Table

from steerlab.errors import DataError, SpecError
from steerlab.evaluate import SuiteResult, SuiteRow


def _result() -> SuiteResult:
    rows = [
        SuiteRow("base", "tf_accuracy", "facts", 0.75, 0.5, 0.9, 8, {}),
        SuiteRow("base", "perplexity", "texts", 12.345, 10.0, 15.0, 3, {"tokens": 40}),
        SuiteRow("tuned", "tf_accuracy", "facts", 0.875, 0.625, 1.0, 8, {}),
    ]
    facts = {"kind": "facts", "dataset": "facts", "split": "all", "n": 8}
    config = {"data": [{**facts, "split_reason": "asked for"}]}
    return SuiteResult(rows, ["base", "tuned"], config)


def test_row_json_round_trip_keeps_nan():
    row = SuiteRow("m", "tf_auroc", "facts", float("nan"), float("nan"), float("nan"), 3, {})
    back = SuiteRow.from_json(row.to_json(), "here")
    assert math.isnan(back.value) and back.n == 3
    with pytest.raises(DataError, match="here: missing field 'metric'"):
        SuiteRow.from_json('{"model": "m"}', "here")
    result = SuiteResult([row], ["m"])
    assert "n/a" in result.table_markdown()
    with pytest.raises(SpecError, match="no 'perplexity' row"):
        result.value("m", "perplexity")


def test_table_is_transposed_a_row_per_metric():
    table = _result().table()
    assert isinstance(table, Table)
    assert [c.header for c in table.columns] == ["metric", "data", "base", "tuned"]
    assert table.row_count == 2  # tf_accuracy[facts], perplexity[texts]


def test_summary_lines():
    summary = _result().summary()
    assert isinstance(summary, str) and not summary.endswith("\n")
    lines = summary.splitlines()
    assert lines[0].startswith("honesty suite: 2 model(s) (base, tuned), 2 metric column(s)")
    assert lines[1] == "true/false statements facts: split all (asked for), n = 8"
    assert lines[2] == (
        "base: tf_accuracy[facts] = 0.750 [0.500, 0.900]; perplexity[texts] = 12.35 [10.00, 15.00]"
    )
    assert lines[3] == "tuned: tf_accuracy[facts] = 0.875 [0.625, 1.000]"


def test_rich_table_is_a_deprecated_alias():
    result = _result()
    with pytest.warns(DeprecationWarning, match=r"use SuiteResult\.table\(\)"):
        table = result.rich_table()
    assert [c.header for c in table.columns] == [c.header for c in result.table().columns]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result.table()  # the new name does not warn
