"""Layer discovery and layer selections."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import make_model
from steerlab.errors import LayerError
from steerlab.layers import LAYER_PATHS, find_layers, parse_layers

REQUIRED = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "gpt2")


def test_table_covers_required_architectures():
    for model_type in (*REQUIRED, "gpt_neox"):
        assert model_type in LAYER_PATHS


def test_find_layers_on_each_architecture(tiny):
    model, _ = tiny
    layer_map = find_layers(model)
    assert layer_map.how == "table"
    assert len(layer_map) == 3
    assert all(isinstance(block, nn.Module) for block in layer_map.blocks)


def test_override_and_peft_wrapped_model():
    from peft import LoraConfig, get_peft_model

    model, _ = make_model("llama")
    assert find_layers(model, "model.layers").how == "override"
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    layer_map = find_layers(wrapped)
    assert len(layer_map) == 3
    assert layer_map.path.endswith("model.layers")


class _Config:
    model_type = "mystery"
    num_hidden_layers = 2
    hidden_size = 8


class _Mystery(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.config = _Config()
        self.embed = nn.ModuleList([nn.Embedding(4, 8)])
        self.trunk = nn.Module()
        self.trunk.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])


def test_heuristic_finds_unknown_architecture():
    layer_map = find_layers(_Mystery())
    assert (layer_map.path, layer_map.how, len(layer_map)) == ("trunk.blocks", "heuristic", 2)


def test_unmappable_model_lists_candidates_and_override():
    model = _Mystery()
    model.config.num_hidden_layers = 5
    with pytest.raises(LayerError) as info:
        find_layers(model)
    message = str(info.value)
    assert "trunk.blocks (2)" in message and "layers_path" in message and "\n" not in message
    with pytest.raises(LayerError, match="not a non-empty ModuleList"):
        find_layers(model, "trunk.nothing")


@pytest.mark.parametrize(
    "selection,expected",
    [
        ("all", (0, 1, 2, 3, 4, 5)),
        (None, (0, 1, 2, 3, 4, 5)),
        (3, (3,)),
        (-1, (5,)),
        ("2-4", (2, 3, 4)),
        ("2:4", (2, 3, 4)),
        ("0,2,4-5", (0, 2, 4, 5)),
        ([5, 1, 1], (1, 5)),
        (range(1, 3), (1, 2)),
        ("4", (4,)),
    ],
)
def test_parse_layers(selection, expected):
    assert parse_layers(selection, 6) == expected


@pytest.mark.parametrize("bad", [6, -7, "9", "4-2", "x", [1, "a"], "", True, 2.5])
def test_parse_layers_errors(bad):
    with pytest.raises(LayerError):
        parse_layers(bad, 6)


def test_blocks_output_residual_stream(tiny):
    model, tokenizer = tiny
    enc = tokenizer("hello there", return_tensors="pt")
    with torch.no_grad():
        states = model(**enc, output_hidden_states=True).hidden_states
    assert len(states) == len(find_layers(model)) + 1
