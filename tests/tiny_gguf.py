"""Write a tiny llama model and its tokenizer as a GGUF file (float32 tensors), and bare GGUF
files of any architecture.

Enough of llama.cpp's layout for transformers' GGUF loader: the hyper-parameters, a
byte-level BPE tokenizer, and the tensors under llama.cpp's names with the query and key
rows permuted the way llama.cpp's converter does. :func:`write_bare_gguf` writes a header
and one small tensor, for the files steerlab must refuse (other architectures, control
vectors, parts of split models).
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf.quants import quantize


def _permute(weight: torch.Tensor, heads: int) -> torch.Tensor:
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def quantizable(tensor: torch.Tensor) -> bool:
    """Whether :func:`write_tiny_gguf` quantises this tensor (matrices of whole 32-blocks)."""
    return tensor.ndim == 2 and tensor.shape[-1] % 32 == 0


def write_tiny_gguf(
    model, tokenizer, path: Path, quantization: gguf.GGMLQuantizationType | None = None
) -> Path:
    """Write ``model`` (a tiny llama or qwen2, tied or not) and ``tokenizer`` to ``path``.

    With ``quantization`` (e.g. ``Q8_0``) the :func:`quantizable` matrices are quantised the
    way llama.cpp does, norms and biases stay float32.

    llama.cpp permutes llama's query and key rows (and transformers permutes them back), not
    qwen2's; qwen2's query, key and value biases are written as ``attn_q.bias``... A model
    with tied embeddings gets no ``output.weight``, which is how GGUF says "tied".
    """
    config = model.config
    architecture = config.model_type
    assert architecture in ("llama", "qwen2"), architecture
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_embedding_length(config.hidden_size)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(len(tokenizer))
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    special = set(tokenizer.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in special else 1 for t in tokens])
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in merges])
    writer.add_bos_token_id(tokenizer.pad_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    state_dict = model.state_dict()

    def put(name: str, tensor: torch.Tensor) -> None:
        array = tensor.detach().to(torch.float32).numpy().astype(np.float32)
        if quantization is not None and quantizable(tensor):
            writer.add_tensor(name, quantize(array, quantization), raw_dtype=quantization)
        else:
            writer.add_tensor(name, array)

    put("token_embd.weight", state_dict["model.embed_tokens.weight"])
    put("output_norm.weight", state_dict["model.norm.weight"])
    if not config.tie_word_embeddings:
        put("output.weight", state_dict["lm_head.weight"])
    names = {
        "input_layernorm": "attn_norm",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    permute = _permute if architecture == "llama" else lambda weight, _heads: weight
    for i in range(config.num_hidden_layers):
        prefix = f"model.layers.{i}."
        put(
            f"blk.{i}.attn_q.weight",
            permute(state_dict[prefix + "self_attn.q_proj.weight"], heads),
        )
        put(
            f"blk.{i}.attn_k.weight",
            permute(state_dict[prefix + "self_attn.k_proj.weight"], kv_heads),
        )
        for ours, theirs in names.items():
            put(f"blk.{i}.{theirs}.weight", state_dict[prefix + ours + ".weight"])
        for ours, theirs in (("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v")):
            bias = state_dict.get(f"{prefix}self_attn.{ours}.bias")
            if bias is not None:
                put(
                    f"blk.{i}.{theirs}.bias", permute(bias, heads if ours == "q_proj" else kv_heads)
                )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_bare_gguf(path: Path, architecture: str, **metadata: int | str) -> Path:
    """A GGUF of ``architecture`` with a block count, ``metadata`` and one tiny tensor.

    ``metadata`` keys use ``__`` for dots (``split__count=2`` is ``split.count``); ints are
    written as uint32, strings as strings.
    """
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(2)
    for key, value in metadata.items():
        name = key.replace("__", ".")
        if isinstance(value, str):
            writer.add_string(name, value)
        else:
            writer.add_uint32(name, value)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
