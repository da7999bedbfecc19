"""Finding the decoder blocks whose outputs are the residual stream, and the modules that
write to it (embeddings and each block's sub-layers, see :class:`ResidualLayout`).

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


# -- the modules that write to the residual stream --------------------------------------------


@dataclass(frozen=True)
class ResidualLayout:
    """Which modules of an architecture write to the residual stream, read from its modeling
    code in transformers (``modeling_<type>.py``).

    The residual stream is the sum of what the embeddings and every sub-layer write to it:
    ``h = embed + Σ attention outputs + Σ MLP outputs``, each output added as is (or times a
    constant, Granite's ``residual_multiplier``), never normalised first.

    Attributes:
        embeddings: modules beside the block list whose outputs start the residual stream
            (token, and for GPT-2 position, embeddings), as names relative to the block list's
            parent module.
        sublayers: names, inside each block, of the modules whose outputs are added to the
            residual stream (attention, MLP or mixture of experts).
        writers: names, inside each block, of the projections whose weights produce those
            outputs: a ``Linear``, a GPT-2 ``Conv1D`` or, for experts stored as one 3-D
            tensor, the module holding ``down_proj``; names a block lacks are skipped (MoE
            models may mix dense and expert layers).
        add_bias: name, inside each block, of the projection whose bias is added after the
            MLP (so a bias there adds to the block's output); None when ``add`` cannot fold.
        bias_switch: config attribute that gives ``add_bias`` a bias; None when it always has
            one.
        bias_scale: config attribute the MLP output is multiplied by before the residual add
            (Granite), or None.
    """

    embeddings: tuple[str, ...]
    sublayers: tuple[str, ...]
    writers: tuple[str, ...]
    add_bias: str | None = None
    bias_switch: str | None = None
    bias_scale: str | None = None


_LLAMA_LIKE = ResidualLayout(
    embeddings=("embed_tokens",),
    sublayers=("self_attn", "mlp"),
    writers=("self_attn.o_proj", "mlp.down_proj"),
)
_LLAMA_BIAS = ResidualLayout(
    embeddings=("embed_tokens",),
    sublayers=("self_attn", "mlp"),
    writers=("self_attn.o_proj", "mlp.down_proj"),
    add_bias="mlp.down_proj",
    bias_switch="mlp_bias",
)
_MOE = ResidualLayout(
    embeddings=("embed_tokens",),
    sublayers=("self_attn", "mlp"),
    writers=(
        "self_attn.o_proj",
        "mlp.down_proj",
        "mlp.experts",
        "mlp.shared_expert.down_proj",
    ),
)
# model_type -> layout. Every entry is checked by tests/export (folded weights against hooks
# on the sub-layer outputs, on a tiny model of that type with random norm gains).
RESIDUAL_LAYOUTS: dict[str, ResidualLayout] = {
    "llama": _LLAMA_BIAS,
    "smollm3": _LLAMA_BIAS,
    "granite": ResidualLayout(
        embeddings=("embed_tokens",),
        sublayers=("self_attn", "mlp"),
        writers=("self_attn.o_proj", "mlp.down_proj"),
        add_bias="mlp.down_proj",
        bias_switch="mlp_bias",
        bias_scale="residual_multiplier",
    ),
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "olmo": _LLAMA_LIKE,
    "phi3": _LLAMA_LIKE,
    "mixtral": _MOE,
    "qwen2_moe": _MOE,
    "phi": ResidualLayout(
        embeddings=("embed_tokens",),
        sublayers=("self_attn", "mlp"),
        writers=("self_attn.dense", "mlp.fc2"),
        add_bias="mlp.fc2",
    ),
    "gpt2": ResidualLayout(
        embeddings=("wte", "wpe"),
        sublayers=("attn", "mlp"),
        writers=("attn.c_proj", "mlp.c_proj"),
        add_bias="mlp.c_proj",
    ),
    "gptj": ResidualLayout(
        embeddings=("wte",),
        sublayers=("attn", "mlp"),
        writers=("attn.out_proj", "mlp.fc_out"),
        add_bias="mlp.fc_out",
    ),
    "gpt_neox": ResidualLayout(
        embeddings=("embed_in",),
        sublayers=("attention", "mlp"),
        writers=("attention.dense", "mlp.dense_4h_to_h"),
        add_bias="mlp.dense_4h_to_h",
    ),
    "falcon": ResidualLayout(
        embeddings=("word_embeddings",),
        sublayers=("self_attention", "mlp"),
        writers=("self_attention.dense", "mlp.dense_4h_to_h"),
        add_bias="mlp.dense_4h_to_h",
        bias_switch="bias",
    ),
}
# Architectures that normalise a sub-layer's output before adding it to the residual stream:
# the norm's division by the output's own size makes removing a direction from the weights
# differ from removing it from the residual stream.
POST_NORM_TYPES = frozenset({"gemma2", "gemma3", "gemma3_text", "olmo2", "olmo3"})


@dataclass(frozen=True, eq=False)
class ResidualModules:
    """The modules of one model that write to its residual stream.

    Attributes:
        layout: the architecture's :class:`ResidualLayout`.
        layer_map: the decoder blocks.
        embeddings: ``(name, module)`` of each embedding (names relative to the model).
        sublayers: ``(name, module)`` of each sub-layer of each block, in order.
    """

    layout: ResidualLayout
    layer_map: LayerMap
    embeddings: tuple[tuple[str, nn.Module], ...]
    sublayers: tuple[tuple[str, nn.Module], ...]


def residual_layout(model: nn.Module) -> ResidualLayout:
    """The :class:`ResidualLayout` of ``model``'s architecture.

    Raises:
        LayerError: one line saying why, for an architecture with post-norms or one whose
            modeling code steerlab has not checked.
    """
    config = text_config(model) if hasattr(model, "config") else None
    model_type = str(getattr(config, "model_type", None))
    if model_type in POST_NORM_TYPES:
        raise LayerError(
            f"{model_type} normalises each sub-layer's output before adding it to the residual "
            "stream (post-norms), so no change to a sub-layer's weights or output adds to or "
            "removes from the residual stream exactly"
        )
    layout = RESIDUAL_LAYOUTS.get(model_type)
    if layout is None:
        raise LayerError(
            f"steerlab does not know which modules of a {model_type} model write to the "
            f"residual stream (known: {', '.join(sorted(RESIDUAL_LAYOUTS))})"
        )
    return layout


def find_residual_modules(model: nn.Module, layers_path: str | None = None) -> ResidualModules:
    """The embedding and sub-layer modules of ``model`` whose outputs make up its residual
    stream (see :class:`ResidualLayout`).

    Raises:
        LayerError: an architecture :func:`residual_layout` refuses, or a module it names
            that this model lacks.
    """
    layout = residual_layout(model)
    layer_map = find_layers(model, layers_path)
    parent = layer_map.path.rsplit(".", 1)[0] if "." in layer_map.path else ""
    embeddings = []
    for name in layout.embeddings:
        path = f"{parent}.{name}" if parent else name
        module = _get(model, path)
        if module is None:
            raise LayerError(f"the model has no embedding module {path!r}")
        embeddings.append((path, module))
    sublayers = []
    for index, block in enumerate(layer_map.blocks):
        for name in layout.sublayers:
            module = _get(block, name)
            if module is None:
                raise LayerError(f"decoder block {index} has no sub-layer {name!r}")
            sublayers.append((f"{layer_map.path}.{index}.{name}", module))
    return ResidualModules(layout, layer_map, tuple(embeddings), tuple(sublayers))
