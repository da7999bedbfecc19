"""Fixtures: tiny random models of several architectures and a tokenizer built in-process.

Nothing here downloads anything: the tokenizer is a byte-level BPE trained on a few
sentences, and the models are built from configs with random weights (hidden 32-64,
2-4 layers).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from steerlab.models import prepare_tokenizer

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "I am happy today, the weather is lovely and bright.",
    "I feel sad and gloomy, the sky is grey and cold.",
    "What is the capital of France? Paris is the capital of France.",
    "Answer with (A) or (B). The answer is (A).",
    "Tell me about your day. It was a good day at work.",
    "Honest answers are true; deceptive answers are false.",
] * 20
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "phi3", "gpt2", "gpt_neox")


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return tokenizer.to_str()


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh tiny chat tokenizer (ChatML-like template, pads with <|endoftext|>)."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return prepare_tokenizer(tokenizer)  # type: ignore[return-value]


def make_model(arch: str, layers: int = 3, hidden: int = 32, seed: int = 0):
    """A tiny random causal LM of architecture ``arch``, in eval mode, float32."""
    tokenizer = make_tokenizer()
    vocab = len(tokenizer)
    common = {
        "vocab_size": vocab,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    if arch == "gpt2":
        config = AutoConfig.for_model(
            arch, n_embd=hidden, n_layer=layers, n_head=4, n_positions=256, **common
        )
    elif arch == "gpt_neox":
        config = AutoConfig.for_model(
            arch,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            intermediate_size=hidden * 2,
            max_position_embeddings=256,
            **common,
        )
    else:
        extra = {"head_dim": hidden // 4} if arch in ("qwen3", "gemma2") else {}
        config = AutoConfig.for_model(
            arch,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=hidden * 2,
            max_position_embeddings=256,
            **extra,
            **common,
        )
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.eval()
    model.config.steerlab_model_id = f"tiny-{arch}"
    return model, tokenizer


@pytest.fixture(params=ARCHITECTURES)
def arch(request: pytest.FixtureRequest) -> str:
    """Each tiny architecture in turn."""
    return str(request.param)


@pytest.fixture
def tiny(arch: str):
    """(model, tokenizer) for the current architecture."""
    return make_model(arch)


@pytest.fixture
def llama():
    """A tiny llama (the default model's architecture) and its tokenizer."""
    return make_model("llama", layers=4, hidden=48)


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point STEERLAB_CACHE at a temporary folder."""
    monkeypatch.setenv("STEERLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def save_tiny_llama(root: Path, model_dir: str, vector_file: str) -> tuple[Path, Path]:
    """Save a tiny llama (3 layers, hidden 32) and its tokenizer to ``root/model_dir``, and a
    mean-difference vector from 6 built-in honesty pairs to ``root/vector_file``.

    Returns:
        ``(model folder, vector file)``, for CLI tests that take paths.
    """
    from steerlab.data.pairs import builtin_pairs
    from steerlab.extract import extract

    model, tokenizer = make_model("llama", layers=3, hidden=32)
    model.save_pretrained(root / model_dir)
    tokenizer.save_pretrained(root / model_dir)
    vector = extract(model, tokenizer, builtin_pairs("honesty", limit=6), "mean_diff", "all")
    vector.save(root / vector_file)
    return root / model_dir, root / vector_file
