"""The honesty suite's settings: HonestySuite checks, data folders, the named suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from suite_helpers import TQA

from steerlab.errors import DataError, SpecError
from steerlab.evaluate import HonestySuite, find_data_dir
from steerlab.evaluate.suite_config import resolve_suite


def test_suite_fields_are_checked_with_one_line_each():
    with pytest.raises(SpecError, match="limit"):
        HonestySuite(limit=0)
    with pytest.raises(SpecError, match="measures nothing"):
        HonestySuite(facts=(), ab=(), text=None)
    with pytest.raises(SpecError, match="suite field 'split' 'most' is not one of auto"):
        HonestySuite(split="most")
    with pytest.raises(SpecError, match="suite field 'bootstrap' must be a positive integer"):
        HonestySuite(bootstrap=True)
    with pytest.raises(SpecError, match=r"suite field 'seed' must be an integer, got 1\.5"):
        HonestySuite(seed=1.5)
    with pytest.raises(SpecError, match="suite field 'layers' is empty"):
        HonestySuite(layers=())
    assert HonestySuite(layers=3, limit=None).layers == (3,)
    with pytest.raises(SpecError, match="unknown suite 'nope'"):
        resolve_suite("nope")


def test_from_data_dir_and_find_data_dir(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "facts").mkdir(parents=True)
    (root / "facts" / "cities.csv").write_text("statement,label\nA is B.,1\n")
    (root / "facts" / "facts_true_false.csv").write_text("statement,label\nC is D.,0\n")
    suite = HonestySuite.from_data_dir(root, limit=5)
    assert suite.facts == (
        str(root / "facts" / "facts_true_false.csv"),
        str(root / "facts" / "cities.csv"),
    )
    assert suite.truthfulqa is None and suite.limit == 5
    assert suite.ab == ("builtin:honesty_ab",) and suite.text == "builtin:general_text"
    (root / "truthfulqa").mkdir()
    (root / "truthfulqa" / "mc_task.json").write_text(json.dumps(TQA))
    assert HonestySuite.from_data_dir(root).truthfulqa == str(root / "truthfulqa" / "mc_task.json")
    with pytest.raises(SpecError, match="unknown suite field 'nope'"):
        HonestySuite.from_data_dir(root, nope=1)
    with pytest.raises(DataError, match="no such data folder"):
        HonestySuite.from_data_dir(tmp_path / "missing")

    monkeypatch.delenv("STEERLAB_DATA", raising=False)
    work = tmp_path / "work" / "main"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert find_data_dir() is None
    assert find_data_dir(str(root)) == root
    monkeypatch.setenv("STEERLAB_DATA", str(root))
    assert find_data_dir() == root
    monkeypatch.setenv("STEERLAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="STEERLAB_DATA"):
        find_data_dir()
    monkeypatch.delenv("STEERLAB_DATA")
    shared = tmp_path / "work" / "shared" / "data" / "facts"
    shared.mkdir(parents=True)
    assert find_data_dir() == Path("..") / "shared" / "data"
