"""The KIND:PATH dispatcher of steerlab.data.evalsets, and the facade re-exporting every loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalset_files import SHARED, needs_shared, write

from steerlab.data.evalsets import (
    TASK_KINDS,
    ABItem,
    load_task_data,
)
from steerlab.errors import DataError


@needs_shared
def test_load_task_data_real_files() -> None:
    caa = load_task_data(f"caa:{SHARED / 'caa' / 'refusal' / 'test_ab.json'}")
    assert len(caa) == 50 and isinstance(caa[0], ABItem)
    assert load_task_data(f"ab:{SHARED / 'caa' / 'refusal' / 'test_ab.json'}", limit=3) == caa[:3]
    assert len(load_task_data(f"mmlu:{SHARED / 'mmlu' / 'international_law_test.csv'}")) == 121
    assert len(load_task_data(f"advbench:{SHARED / 'harmful' / 'advbench.csv'}")) == 520
    assert len(load_task_data(f"harmful:{SHARED / 'harmful' / 'harmful_train.json'}")) == 260
    assert len(load_task_data(f"truthfulqa:{SHARED / 'truthfulqa' / 'mc_task.json'}")) == 790
    assert len(load_task_data(f"stereoset:{SHARED / 'stereoset' / 'test.jsonl'}")) == 4229
    assert len(load_task_data(f"FACTS:{SHARED / 'facts' / 'facts_true_false.csv'}")) == 612


def test_load_task_data_unknown_kind() -> None:
    with pytest.raises(DataError) as info:
        load_task_data("nonsense:some/file.json")
    message = str(info.value)
    assert "unknown data kind 'nonsense'" in message
    for kind in ("mmlu", "caa", "ab", "advbench", "harmful", "truthfulqa", "stereoset", "facts"):
        assert kind in message
    assert set(TASK_KINDS) >= {"mmlu", "caa", "facts"}


@pytest.mark.parametrize("spec", ["no-colon-here", "facts:", ":file.csv"])
def test_load_task_data_malformed_spec(spec: str) -> None:
    with pytest.raises(DataError, match="expected KIND:PATH"):
        load_task_data(spec)


def test_load_task_data_passes_errors_through(tmp_path: Path) -> None:
    path = write(tmp_path / "evs_dispatch_bad.csv", "statement,label\nA.,2\n")
    with pytest.raises(DataError, match=r"evs_dispatch_bad\.csv:2: label must be 0 or 1"):
        load_task_data(f"facts:{path}")


def test_the_facade_reexports_every_loader_and_type() -> None:
    """``steerlab.data.evalsets`` keeps every name it had before the split (README imports)."""
    from steerlab.data import evalsets, mmlu, statements

    for name in evalsets.__all__:
        assert hasattr(evalsets, name), name
    assert evalsets.load_mmlu is mmlu.load_mmlu and evalsets.Statement is statements.Statement
    assert evalsets.LETTERS == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert set(evalsets.TASK_LOADERS) == set(TASK_KINDS)


@pytest.mark.parametrize("spec", ["name=mmlu:x.csv", "mmlu :  "])
def test_load_task_data_takes_no_name(spec: str) -> None:
    with pytest.raises(DataError, match="expected KIND:PATH with KIND one of"):
        load_task_data(spec)
