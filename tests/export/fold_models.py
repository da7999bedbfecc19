"""Tiny random models for the fold tests: every architecture steerlab folds (and those it
refuses), tied or untied embeddings, with RANDOM norm gains and biases.

Why random gains: with unit gains a residual stream without a component along û keeps none
after the final norm, so an output head that wrongly shares orthogonalised embeddings gives
the same logits and a tying bug hides.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from conftest import make_tokenizer
from steerlab.models import model_identity
from steerlab.vector import SteeringVector, VectorMetadata

ADD_ARCHS = ("llama", "smollm3", "granite", "phi", "gpt2", "gptj", "gpt_neox", "falcon")
ABLATE_ONLY_ARCHS = ("mistral", "qwen2", "qwen3", "gemma", "olmo", "phi3", "mixtral", "qwen2_moe")
ABLATE_ARCHS = ADD_ARCHS + ABLATE_ONLY_ARCHS
POST_NORM_ARCHS = ("gemma2", "gemma3_text", "olmo2")
# Architectures whose config can tie the embeddings (a tied variant is tested for each).
TIED_ARCHS = ("llama", "gemma", "qwen2", "gpt2", "phi3", "granite")
# Writers without biases, so a rank-1 LoRA adapter is exact.
PEFT_ARCHS = ("llama", "mistral", "qwen2", "qwen3", "gemma", "olmo", "phi3", "granite", "smollm3")

_LLAMA_STYLE = {
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
_EXTRA: dict[str, dict] = {
    "qwen3": {"head_dim": 8},
    "gemma2": {"head_dim": 8},
    "gemma3_text": {"head_dim": 8},
    "granite": {"residual_multiplier": 0.37, "embedding_multiplier": 3.0, "logits_scaling": 2.0},
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2_moe": {
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 40,
        "shared_expert_intermediate_size": 48,
        "decoder_sparse_step": 2,  # dense and expert layers mixed
    },
    "phi": {"partial_rotary_factor": 0.5},
    "falcon": {"new_decoder_architecture": False, "parallel_attn": True, "alibi": False},
}
# Other layouts of the same architectures (sequential vs parallel residual, biases on).
VARIANTS: dict[str, tuple[str, dict]] = {
    "falcon-40b-style": ("falcon", {"new_decoder_architecture": True, "num_kv_heads": 2}),
    "falcon-sequential": ("falcon", {"parallel_attn": False}),
    "falcon-alibi-bias": ("falcon", {"alibi": True, "bias": True}),
    "gpt_neox-sequential": ("gpt_neox", {"use_parallel_residual": False}),
    "llama-attention-bias": ("llama", {"attention_bias": True}),
    "qwen2_moe-all-sparse": ("qwen2_moe", {"decoder_sparse_step": 1}),
}


def _config(
    arch: str, vocab: int, hidden: int, layers: int, tied: bool, common: dict, overrides: dict
):
    common = {**common, "vocab_size": vocab, "tie_word_embeddings": tied}
    extra = {**_EXTRA.get(arch, {}), **overrides}
    if arch == "gpt2":
        return AutoConfig.for_model(
            arch, n_embd=hidden, n_layer=layers, n_head=4, n_positions=256, **extra, **common
        )
    if arch == "gptj":
        return AutoConfig.for_model(
            arch,
            n_embd=hidden,
            n_layer=layers,
            n_head=4,
            n_positions=256,
            rotary_dim=4,
            **extra,
            **common,
        )
    if arch in ("gpt_neox", "falcon", "phi"):
        sizes = {} if arch == "falcon" else {"intermediate_size": hidden * 2}
        return AutoConfig.for_model(
            arch,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            max_position_embeddings=256,
            **sizes,
            **extra,
            **common,
        )
    return AutoConfig.for_model(
        arch,
        hidden_size=hidden,
        num_hidden_layers=layers,
        intermediate_size=hidden * 2,
        **_LLAMA_STYLE,
        **extra,
        **common,
    )


def randomise_norms(model: torch.nn.Module, seed: int = 1) -> None:
    """Give every normalisation layer random gains (and biases, where it has them)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            kind = type(module).__name__.lower()
            if "norm" not in kind and not name.split(".")[-1].startswith("ln"):
                continue
            for parameter in module.parameters(recurse=False):
                noise = torch.randn(parameter.shape, generator=generator)
                parameter.copy_(parameter + 0.5 * noise)


def make_fold_model(
    arch: str, *, tied: bool = False, layers: int = 3, hidden: int = 32, **overrides
):
    """A tiny random causal LM of ``arch`` in eval mode, float32, eager attention, with random
    norm gains; ``tied`` ties the output head to the input embeddings; ``overrides`` are
    config values."""
    tokenizer = make_tokenizer()
    common = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.pad_token_id,
    }
    config = _config(arch, len(tokenizer), hidden, layers, tied, common, overrides)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.eval()
    randomise_norms(model)
    with torch.no_grad():  # random biases where the model has them (zero by default)
        generator = torch.Generator().manual_seed(2)
        for name, parameter in model.named_parameters():
            if name.endswith(".bias") and "norm" not in name and ".ln" not in name:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    model.config.steerlab_model_id = f"tiny-{arch}{'-tied' if tied else ''}"
    if tied:
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    return model, tokenizer


def random_vector(model: torch.nn.Module, seed: int = 3, norm: float = 4.0) -> SteeringVector:
    """A random vector with a direction for every layer and activation norms ``norm``."""
    identity = model_identity(model)
    generator = torch.Generator().manual_seed(seed)
    directions = {
        layer: torch.randn(identity.hidden_size, generator=generator)
        for layer in range(identity.num_layers)
    }
    metadata = VectorMetadata.for_model(identity, "mean_diff", n_examples=4)
    return SteeringVector(directions, metadata, {layer: norm for layer in directions})


def batch(tokenizer):
    """Two left-padded prompts of different lengths."""
    return tokenizer(
        ["The quick brown fox jumps over", "I am happy"], return_tensors="pt", padding=True
    )
