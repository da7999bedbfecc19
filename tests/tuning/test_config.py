"""FinetuneConfig: one default per setting, every field checked (steerlab.validation)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from steerlab.errors import SpecError
from steerlab.tuning import SCHEDULERS, FinetuneConfig


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": 2.5}, "rank"),
        ({"alpha": 0}, "alpha"),
        ({"dropout": 1.0}, "dropout"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"learning_rate": -1e-4}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_steps": 0}, "max_steps"),
        ({"epochs": 0}, "epochs"),
        ({"eval_fraction": 1.0}, "eval_fraction"),
        ({"save_steps": 0}, "save_steps"),
        ({"target_modules": ()}, "target_modules"),
        ({"full_finetune_layers": (-1,)}, "full_finetune_layers"),
        ({"lr_scheduler": "bogus"}, "lr_scheduler"),
        ({"early_stopping_patience": 2}, "early_stopping_patience=2 needs eval_fraction > 0"),
        ({"early_stopping_patience": 0, "eval_fraction": 0.2}, "early_stopping_patience"),
        ({"early_stopping_threshold": float("nan")}, "early_stopping_threshold"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        FinetuneConfig(**kwargs)


def test_config_normalises_sequences() -> None:
    config = FinetuneConfig(target_modules=["q_proj"], full_finetune_layers=[1, 2])  # type: ignore[arg-type]
    assert config.target_modules == ("q_proj",) and config.full_finetune_layers == (1, 2)
    assert config.method == "layers" and json.dumps(config.to_dict())


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"early_stopping_patience": 1}, "early_stopping_patience=1 needs eval_fraction"),
        ({"early_stopping_patience": 0, "eval_fraction": 0.2}, "early_stopping_patience"),
        ({"early_stopping_threshold": -1.0}, "early_stopping_threshold"),
    ],
)
def test_early_stopping_config_validation(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        FinetuneConfig(**kwargs)


def test_defaults() -> None:
    config = FinetuneConfig()
    assert config.method == "lora" and config.eval_fraction == 0.0 and not config.merge
    assert (config.rank, config.alpha, config.learning_rate, config.batch_size) == (
        8,
        16.0,
        2e-4,
        4,
    )
    assert (config.epochs, config.max_steps, config.max_length, config.save_steps) == (
        1.0,
        None,
        256,
        50,
    )
    assert config.lr_scheduler in SCHEDULERS and config.early_stopping_patience is None


def test_values_are_stored_normalised() -> None:
    config = FinetuneConfig(rank=np.int64(4), alpha=8, full_finetune_layers=[np.int64(1)])  # type: ignore[arg-type]
    assert type(config.rank) is int and type(config.alpha) is float
    assert config.full_finetune_layers == (1,) and type(config.full_finetune_layers[0]) is int
    assert json.dumps(config.to_dict())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank": True}, "rank must be a positive integer, got True"),
        ({"max_length": 1}, "max_length must be an integer >= 2, got 1"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"dropout": 1.0}, "dropout must be a finite number >= 0 and < 1, got 1.0"),
        ({"merge": 1}, "merge must be True or False, got 1"),
        ({"target_modules": ("q_proj", " ")}, "target module ' ' is not a module name"),
        ({"full_finetune_layers": ()}, "full_finetune_layers is empty"),
    ],
)
def test_messages_are_one_line(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        FinetuneConfig(**kwargs)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
