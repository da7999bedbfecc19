"""steerlab.extract.comparison: cosine per layer between vectors, files and summary."""

from __future__ import annotations

import json

import pytest

import steerlab as sl
from conftest import make_model
from steerlab.errors import SpecError
from steerlab.extract.comparison import compare


def test_compare_cosines_and_files(tmp_path):
    model, tokenizer = make_model("llama")
    pairs = [sl.ContrastPair("happy", "sad"), sl.ContrastPair("good day", "bad day")]
    vector = sl.extract(model, tokenizer, pairs, "mean_diff", progress=False)
    other = sl.extract(model, tokenizer, pairs, "pca_center", progress=False)
    result = compare({"v": vector, "neg": -vector, "other": other})
    by_pair = {(r.a, r.b, r.layer): r.cosine for r in result.rows}
    for layer in vector.layers:
        assert by_pair[("v", "neg", layer)] == pytest.approx(-1.0, abs=1e-9)
    same = compare({"a": vector, "b": vector})
    assert all(r.cosine == pytest.approx(1.0, abs=1e-9) for r in same.rows)
    written = result.save(tmp_path / "cmp")
    names = {p.name for p in written}
    assert names == {"cosine.csv", "cosine.json", "cosine.png", "cosine.svg"}
    data = json.loads((tmp_path / "cmp" / "cosine.json").read_text())
    assert len(data["rows"]) == 3 * len(vector.layers)
    assert (tmp_path / "cmp" / "cosine.csv").read_text().startswith("a,b,layer,cosine")
    with pytest.raises(SpecError):
        compare({"only": vector})


def test_compare_summary_and_table():
    model, tokenizer = make_model("llama")
    vector = sl.extract(
        model, tokenizer, [sl.ContrastPair("happy", "sad")], "mean_diff", progress=False
    )
    result = compare({"v": vector, "neg": -vector})
    lines = result.summary().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"v vs neg: mean cosine -1.000 over {len(vector.layers)} layers")
    assert result.table().row_count == len(vector.layers)
