"""The weights that write to the residual stream, and the projection maths that removes a
direction from them.

A writer maps its input to a vector in the residual stream (width ``d``); removing the unit
direction ``û`` from everything it writes is ``P = I - c·û ûᵀ`` applied to its output (c = 1
removes the component; any c scales it by ``1 - c``, exactly as the hooks do). For each kind
of writer that is a fixed change of its weights:

================= ======================== =====================================
writer            weight shape             new weight
================= ======================== =====================================
``nn.Linear``     ``(d, in)``: y = W x + b ``W - c·û (ûᵀ W)``, ``b - c·(b·û) û``
GPT-2 ``Conv1D``  ``(in, d)``: y = x W + b ``W - c·(W û) ûᵀ``, ``b - c·(b·û) û``
``nn.Embedding``  ``(vocab, d)``: row ids  ``E - c·(E û) ûᵀ``
experts           ``(experts, d, in)``     each expert as ``nn.Linear``
================= ======================== =====================================

The same change as a rank-1 product ``ΔW = B A`` (what a LoRA adapter of rank 1 adds, see
:mod:`steerlab.export.adapter`) is :func:`rank_one_factors`. Everything is computed in float64
and cast back to the weight's dtype once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from steerlab.errors import SpecError
from steerlab.layers import ResidualModules


@dataclass(frozen=True, eq=False)
class Writer:
    """One module that writes to the residual stream.

    Attributes:
        name: its dotted name in the model.
        module: the module.
        kind: ``linear``, ``conv1d``, ``embedding`` or ``experts``.
    """

    name: str
    module: nn.Module
    kind: str

    @property
    def weight(self) -> torch.Tensor:
        """The weight it writes with (experts: ``down_proj``, (experts, d, in))."""
        tensor = getattr(self.module, "down_proj" if self.kind == "experts" else "weight")
        assert isinstance(tensor, torch.Tensor)
        return tensor

    @property
    def bias(self) -> torch.Tensor | None:
        """The bias added to what it writes, if any (experts: none supported)."""
        bias = getattr(self.module, "bias", None) if self.kind in ("linear", "conv1d") else None
        return bias if isinstance(bias, torch.Tensor) else None


def writer_kind(module: nn.Module, hidden: int, name: str) -> str:
    """``linear``, ``conv1d``, ``embedding`` or ``experts``, checking that ``module``'s output
    is ``hidden`` wide.

    Raises:
        SpecError: a module of another kind or width (steerlab's table would be wrong).
    """
    if isinstance(module, nn.Embedding):
        kind, width = "embedding", module.weight.shape[1]
    elif isinstance(module, Conv1D):
        kind, width = "conv1d", module.weight.shape[1]
    elif isinstance(module, nn.Linear):
        kind, width = "linear", module.weight.shape[0]
    elif isinstance(experts := getattr(module, "down_proj", None), nn.Parameter) and (
        experts.dim() == 3
    ):
        if getattr(module, "down_proj_bias", None) is not None:
            raise SpecError(f"{name}: experts with biases are not supported")
        kind, width = "experts", int(experts.shape[1])
    else:
        raise SpecError(
            f"{name}: a {type(module).__name__} writes to the residual stream; steerlab only "
            "folds Linear, Conv1D, Embedding and expert down projections"
        )
    if width != hidden:
        raise SpecError(f"{name}: writes {width} values, but the residual stream is {hidden} wide")
    return kind


def find_writers(modules: ResidualModules, hidden: int) -> tuple[Writer, ...]:
    """Every module whose weights write to the residual stream: the embeddings, then each
    block's writers (see :class:`~steerlab.layers.ResidualLayout`), in order.

    Raises:
        SpecError: a writer of an unknown kind, or a block where fewer writers than
            sub-layers were found (the table does not fit this model).
    """
    writers = [
        Writer(name, module, writer_kind(module, hidden, name))
        for name, module in modules.embeddings
    ]
    layout, layer_map = modules.layout, modules.layer_map
    for index, block in enumerate(layer_map.blocks):
        found = []
        for name in layout.writers:
            try:
                module = block.get_submodule(name)
            except AttributeError:
                continue
            full = f"{layer_map.path}.{index}.{name}"
            found.append(Writer(full, module, writer_kind(module, hidden, full)))
        if len(found) < len(layout.sublayers):
            raise SpecError(
                f"decoder block {index}: found {len(found)} of the modules that write to the "
                f"residual stream ({', '.join(layout.writers)}); this model's layout is not "
                "the one steerlab knows"
            )
        writers += found
    return tuple(writers)


def _project_rows(matrix: torch.Tensor, unit: torch.Tensor, c: float) -> torch.Tensor:
    """``M - c·(M û) ûᵀ`` for ``M`` of shape (..., d): the rows lose their û component."""
    return matrix - c * (matrix @ unit).unsqueeze(-1) * unit


def _project_columns(matrix: torch.Tensor, unit: torch.Tensor, c: float) -> torch.Tensor:
    """``M - c·û (ûᵀ M)`` for ``M`` of shape (..., d, in): the columns lose their û part."""
    return matrix - c * unit.unsqueeze(-1) * (unit @ matrix).unsqueeze(-2)


@torch.no_grad()
def project_out(writer: Writer, unit: torch.Tensor, coefficient: float = 1.0) -> None:
    """Change ``writer``'s weights (and bias) in place so that what it writes loses
    ``coefficient`` times its component along ``unit`` (1: all of it).

    Args:
        writer: the module (see :func:`find_writers`).
        unit: (d,) unit direction.
        coefficient: the ablation's coefficient.
    """
    weight = writer.weight
    u = unit.to(device=weight.device, dtype=torch.float64)
    w = weight.detach().to(torch.float64)
    if writer.kind in ("embedding", "conv1d"):
        new = _project_rows(w, u, coefficient)
    else:  # linear, experts: (..., d, in)
        new = _project_columns(w, u, coefficient)
    weight.copy_(new.to(weight.dtype))
    bias = writer.bias
    if bias is not None:
        bias.copy_(_project_rows(bias.detach().to(torch.float64), u, coefficient).to(bias.dtype))


@torch.no_grad()
def rank_one_factors(
    writer: Writer, unit: torch.Tensor, coefficient: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, A)`` with ``B A`` the change :func:`project_out` makes to a Linear or Embedding
    weight, in peft's LoRA shapes (rank 1, scaling 1), float32.

    * ``linear`` (weight (d, in)): ``B = -c·û`` (d, 1), ``A = ûᵀ W`` (1, in); ΔW = B A.
    * ``embedding`` (weight (vocab, d)): peft adds ``(B A)ᵀ`` with ``A`` (1, vocab) and
      ``B`` (d, 1): ``A = (E û)ᵀ``, ``B = -c·û``.

    Raises:
        SpecError: other kinds (peft's Conv1D and expert adapters are not used).
    """
    if writer.kind not in ("linear", "embedding"):
        raise SpecError(f"{writer.name}: a rank-1 adapter covers Linear and Embedding writers only")
    weight = writer.weight.detach().to(torch.float64)
    u = unit.to(device=weight.device, dtype=torch.float64)
    b = (-coefficient * u).unsqueeze(-1)
    a = (weight @ u if writer.kind == "embedding" else u @ weight).unsqueeze(0)
    return b.to(torch.float32), a.to(torch.float32)
