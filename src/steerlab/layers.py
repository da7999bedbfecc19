"""Finding the decoder blocks whose outputs are the residual stream.

Layer ``i`` in steerlab means the output of decoder block ``i`` (0-based), i.e.
``hidden_states[i + 1]`` in transformers' terms. Blocks are found by a per-architecture
table, then by a heuristic (the ModuleList whose length is the config's layer count), and a
user override (``layers_path="model.layers"``) beats both.

Upstream assumption (see :mod:`steerlab.upstream`): the blocks are a ``ModuleList`` at a
known path or of ``num_hidden_layers`` identical modules; tested in ``tests/test_upstream.py``
and ``tests/test_layers.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from steerlab.errors import LayerError
from steerlab.models import text_config
from steerlab.validation import is_int

# model_type -> attribute paths of the decoder block list, tried in order.
LAYER_PATHS: dict[str, tuple[str, ...]] = {
    "llama": ("model.layers",),
    "mistral": ("model.layers",),
    "mixtral": ("model.layers",),
    "qwen2": ("model.layers",),
    "qwen2_moe": ("model.layers",),
    "qwen3": ("model.layers",),
    "qwen3_moe": ("model.layers",),
    "gemma": ("model.layers",),
    "gemma2": ("model.layers",),
    "gemma3": ("model.language_model.layers", "model.layers", "language_model.model.layers"),
    "gemma3_text": ("model.layers",),
    "phi": ("model.layers",),
    "phi3": ("model.layers",),
    "olmo": ("model.layers",),
    "olmo2": ("model.layers",),
    "granite": ("model.layers",),
    "smollm3": ("model.layers",),
    "gpt2": ("transformer.h",),
    "gptj": ("transformer.h",),
    "gpt_neo": ("transformer.h",),
    "bloom": ("transformer.h",),
    "falcon": ("transformer.h",),
    "gpt_neox": ("gpt_neox.layers",),
    "opt": ("model.decoder.layers",),
}

# Prefixes that wrappers (PEFT) put in front of the bare model's paths.
_WRAPPER_PREFIXES = ("", "base_model.model.", "base_model.")

LayerSelection = str | int | Sequence[int] | range | None


@dataclass(frozen=True, eq=False)
class LayerMap:
    """The decoder blocks of a model.

    Attributes:
        path: dotted attribute path of the block list, e.g. ``"model.layers"``.
        blocks: the blocks, in order; ``blocks[i]`` outputs layer ``i``.
        how: ``"table"``, ``"heuristic"`` or ``"override"``.
    """

    path: str
    blocks: tuple[nn.Module, ...]
    how: str

    def __len__(self) -> int:
        return len(self.blocks)

    def resolve(self, selection: LayerSelection) -> tuple[int, ...]:
        """Sorted, unique, in-range indices of a selection (see :func:`parse_layers`)."""
        return parse_layers(selection, len(self.blocks))


def _module_lists(model: nn.Module) -> list[tuple[str, int]]:
    return [(n, len(m)) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and n]


def _get(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def find_layers(model: nn.Module, layers_path: str | None = None) -> LayerMap:
    """Locate the decoder blocks of ``model``.

    Args:
        model: a transformers causal LM (optionally PEFT-wrapped).
        layers_path: dotted path of the block ModuleList, overriding the table and heuristic.

    Raises:
        LayerError: listing the ModuleLists found and how to override, if none fits.
    """
    if layers_path:
        found = _get(model, layers_path)
        if not isinstance(found, nn.ModuleList) or len(found) == 0:
            raise LayerError(
                f"layers path {layers_path!r} is not a non-empty ModuleList; candidates: "
                f"{_describe_candidates(model)}"
            )
        return LayerMap(layers_path, tuple(found), "override")
    config = text_config(model) if hasattr(model, "config") else None
    model_type = getattr(config, "model_type", None) or getattr(
        getattr(model, "config", None), "model_type", None
    )
    for candidate in LAYER_PATHS.get(str(model_type), ()) + LAYER_PATHS.get(
        str(getattr(getattr(model, "config", None), "model_type", None)), ()
    ):
        for prefix in _WRAPPER_PREFIXES:
            found = _get(model, prefix + candidate)
            if isinstance(found, nn.ModuleList) and len(found) > 0:
                return LayerMap(prefix + candidate, tuple(found), "table")
    expected = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    lists = [
        (name, n)
        for name, n in _module_lists(model)
        if n > 0 and _homogeneous(_blocks(model, name))
    ]
    matching = [(name, n) for name, n in lists if expected is None or n == expected]
    if len(matching) >= 1:
        # Prefer the shallowest match: nested lists (e.g. experts) sit deeper.
        name = min(matching, key=lambda item: item[0].count("."))[0]
        return LayerMap(name, _blocks(model, name), "heuristic")
    raise LayerError(
        f"cannot find the decoder blocks of model_type {model_type!r} "
        f"(expected {expected} layers); candidates: {_describe_candidates(model)}; "
        "pass layers_path='dotted.path' (CLI: --layers-path) to choose"
    )


def _blocks(model: nn.Module, path: str) -> tuple[nn.Module, ...]:
    container = model.get_submodule(path)
    return tuple(container.children())


def _homogeneous(modules: Iterable[nn.Module]) -> bool:
    kinds = {type(m) for m in modules}
    return len(kinds) == 1


def _describe_candidates(model: nn.Module) -> str:
    lists = _module_lists(model)
    if not lists:
        return "none (the model has no ModuleList)"
    return ", ".join(f"{name} ({n})" for name, n in lists[:12])


_RANGE = re.compile(r"^(-?\d+)\s*(?:-|:|\.\.)\s*(-?\d+)$")


def parse_layers(selection: LayerSelection, num_layers: int) -> tuple[int, ...]:
    """Parse a layer selection into sorted unique indices in ``[0, num_layers)``.

    Accepted: ``None`` or ``"all"`` (every layer); an int (negative counts from the end);
    ``"15"``; ``"12-18"`` / ``"12:18"`` / ``"12..18"`` (inclusive); ``"12,14,16-18"``;
    a list of ints; a ``range``.

    Raises:
        LayerError: naming the value and the valid range.
    """
    if selection is None or (isinstance(selection, str) and selection.strip().lower() == "all"):
        return tuple(range(num_layers))
    raw: list[int] = []
    if isinstance(selection, bool):
        raise LayerError(f"layer selection {selection!r} is not a layer")
    if isinstance(selection, int):
        raw = [selection]
    elif isinstance(selection, str):
        for part in selection.split(","):
            part = part.strip()
            if not part:
                continue
            match = _RANGE.match(part)
            if match:
                start, stop = int(match.group(1)), int(match.group(2))
                if stop < start:
                    raise LayerError(f"layer range {part!r} is empty (end before start)")
                raw.extend(range(start, stop + 1))
            else:
                try:
                    raw.append(int(part))
                except ValueError:
                    raise LayerError(
                        f"layer {part!r} is not a number; use e.g. 15, 12-18, 12,14,16 or all"
                    ) from None
    elif isinstance(selection, range | Sequence):
        for item in selection:
            if not (is_int(item) or isinstance(item, torch.SymInt)):
                raise LayerError(f"layer {item!r} is not an integer")
            raw.append(int(item))
    else:
        raise LayerError(f"layer selection {selection!r} is not understood")
    if not raw:
        raise LayerError(f"layer selection {selection!r} selects no layer")
    out: set[int] = set()
    for layer in raw:
        index = layer + num_layers if layer < 0 else layer
        if not 0 <= index < num_layers:
            raise LayerError(
                f"layer {layer} is out of range: the model has {num_layers} layers "
                f"(0..{num_layers - 1})"
            )
        out.add(index)
    return tuple(sorted(out))
