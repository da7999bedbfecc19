"""MatrixResult: per-condition rates, the CSV, the terminal table and the text summary."""

from __future__ import annotations

from rich.table import Table

from steerlab.evaluate import MatrixResult, MatrixRow


def _rows() -> list[MatrixRow]:
    out = []
    for prompt in ("q1", "q2"):
        out.append(MatrixRow("-", "none", "-", "-", 0.0, prompt, "Paris.", -1, 10.0))
        out.append(MatrixRow("v", "add", "raw", "all", 1.0, prompt, "Lyon.", 1, 12.0))
        out.append(MatrixRow("v", "add", "raw", "all", 8.0, prompt, "zzz zzz", 1, 90.0))
        out.append(MatrixRow("v", "ablate", "-", "all", 1.0, prompt, "Paris.", -1, 11.0))
    out[5] = MatrixRow("v", "add", "raw", "all", 1.0, "q2", "Paris.", -1, 14.0)
    return out


def test_rates_per_condition():
    rates = MatrixResult(_rows(), "answer_change").rates()
    assert [(e["operator"], e["coefficient"]) for e in rates] == [
        ("none", 0.0),
        ("add", 1.0),
        ("add", 8.0),
        ("ablate", 1.0),
    ]
    assert [e["rate"] for e in rates] == [0.0, 0.5, 1.0, 0.0]
    assert [e["median_perplexity"] for e in rates] == [10.0, 13.0, 90.0, 11.0]
    assert all(e["n"] == 2 for e in rates)


def test_summary_lines():
    summary = MatrixResult(_rows(), "answer_change").summary()
    assert summary.splitlines() == [
        "steering matrix: 4 conditions x 2 prompts (scorer: answer_change)",
        "unsteered: rate 0.00, median perplexity 10",
        "highest rate: v add raw all 8: rate 1.00, median perplexity 90",
        "highest rate within 2x the unsteered perplexity: v add raw all 1: rate 0.50, "
        "median perplexity 13",
    ]


def test_table_has_a_row_per_condition():
    result = MatrixResult(_rows(), "answer_change")
    table = result.table()
    assert isinstance(table, Table)
    assert table.title == "steering matrix (rate scored +1 by answer_change)"
    assert [c.header for c in table.columns] == [
        "vector",
        "operator",
        "norm",
        "layers",
        "coef",
        "rate",
        "median ppl",
    ]
    assert table.row_count == len(result.rates())
    assert result.summary_csv().splitlines()[2] == "v,add,raw,all,1.0,0.5000,13,2"
