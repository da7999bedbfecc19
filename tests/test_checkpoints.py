"""steerlab.checkpoints: configs that transformers 4.x reads to the same model as 5.x."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from conftest import make_model
from steerlab.checkpoints import (
    add_legacy_config_keys,
    legacy_config_keys,
    legacy_tokenizer_keys,
    save_checkpoint,
)
from steerlab.errors import DataError


def test_flat_rope_parameters_get_rope_theta_and_torch_dtype() -> None:
    config = {
        "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
        "dtype": "float32",
    }
    assert legacy_config_keys(config) == {"rope_theta": 100000.0, "torch_dtype": "float32"}


def test_scaled_rope_becomes_rope_scaling() -> None:
    rope = {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0}
    added = legacy_config_keys({"rope_parameters": rope, "partial_rotary_factor": 0.5})
    assert added == {
        "rope_theta": 5e5,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0},
    }


def test_per_layer_type_rope_and_nested_text_config() -> None:
    rope = {
        "full_attention": {"rope_type": "linear", "rope_theta": 1e6, "factor": 8.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
    }
    added = legacy_config_keys({"text_config": {"rope_parameters": rope}})
    assert added["text_config"]["rope_theta"] == 1e6
    assert added["text_config"]["rope_local_base_freq"] == 1e4
    assert added["text_config"]["rope_scaling"] == {"rope_type": "linear", "factor": 8.0}


def test_present_keys_are_never_overwritten() -> None:
    config = {"rope_parameters": {"rope_theta": 1e5}, "rope_theta": 1e5, "torch_dtype": "bfloat16"}
    assert legacy_config_keys(config) == {}


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2", "phi3", "gpt_neox"])
def test_saved_checkpoint_has_legacy_keys_and_loads_bit_identically(tmp_path, arch) -> None:
    tiny, tokenizer = make_model(arch)
    config = copy.deepcopy(tiny.config)
    if config.rope_parameters is not None:  # a RoPE base that is no library's default
        config.rope_parameters = {**config.rope_parameters, "rope_theta": 12345.0}
    model = AutoModelForCausalLM.from_config(config).eval()
    model.load_state_dict(tiny.state_dict())
    folder = save_checkpoint(model, tokenizer, tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())
    if "rope_parameters" in config:
        assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 12345.0
    assert config["torch_dtype"] == config["dtype"]
    assert add_legacy_config_keys(folder) is False  # idempotent: nothing left to add
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"  # 4.x knows this name
    # transformers 5 may pick the architecture's own class for the generic name: what must
    # not change is the tokens, chat template included.
    reloaded_tokenizer = AutoTokenizer.from_pretrained(folder)
    chat = [{"role": "user", "content": "Is the sky grey?"}]
    for text in ("Answer with (A) or (B). The answer is (A).", "  two\nlines\t", "Ünï 🙂"):
        assert reloaded_tokenizer(text).input_ids == tokenizer(text).input_ids
    assert reloaded_tokenizer.apply_chat_template(chat) == tokenizer.apply_chat_template(chat)
    reloaded = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    assert AutoConfig.from_pretrained(folder).rope_parameters == model.config.rope_parameters
    ids = tokenizer(["The quick brown fox jumps"], return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_tokenizer_class_renamed_only_when_4x_lacks_it() -> None:
    assert legacy_tokenizer_keys({"tokenizer_class": "TokenizersBackend"}) == {
        "tokenizer_class": "PreTrainedTokenizerFast"
    }
    assert legacy_tokenizer_keys({"tokenizer_class": "LlamaTokenizerFast"}) == {}
    assert legacy_tokenizer_keys({}) == {}


def test_bad_folder_is_one_line(tmp_path) -> None:
    with pytest.raises(DataError, match=r"config\.json: no such file"):
        add_legacy_config_keys(tmp_path)
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(DataError, match="expected a JSON object"):
        add_legacy_config_keys(tmp_path)
