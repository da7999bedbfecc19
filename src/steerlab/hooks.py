"""The only module that installs PyTorch hooks.

Everything that changes or observes a model's forward pass goes through :func:`hooked`, a
context manager built on :class:`contextlib.ExitStack`: each hook's removal is registered
the moment the hook is installed, so no hook survives an exception raised while installing
them, inside the ``with`` block, or inside a hook itself.

Upstream assumption (see :mod:`steerlab.upstream`): a decoder block returns its hidden
states as a tensor or first in a tuple (:func:`hidden_of`); tested in
``tests/test_upstream.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

# Receives a block's hidden states (batch, seq, d_model); returns a replacement or None.
OutputHook = Callable[[torch.Tensor], torch.Tensor | None]
# Observes the positional and keyword arguments of a module's forward call.
InputHook = Callable[[tuple[Any, ...], Mapping[str, Any]], None]


class StopForward(Exception):
    """Raised by a hook to end a forward pass early (nothing after it is needed)."""


def hidden_of(output: Any) -> torch.Tensor:
    """The hidden-state tensor of a decoder block's output (a tensor or a tuple)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"unexpected decoder block output of type {type(output).__name__}")


def _with_hidden(output: Any, hidden: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return hidden
    if isinstance(output, tuple):
        return (hidden, *output[1:])
    return [hidden, *output[1:]]


def _output_hook(fn: OutputHook) -> Callable[[nn.Module, Any, Any], Any]:
    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        replacement = fn(hidden_of(output))
        return None if replacement is None else _with_hidden(output, replacement)

    return hook


def _input_hook(fn: InputHook) -> Callable[[nn.Module, Any, Any], None]:
    def hook(_module: nn.Module, args: Any, kwargs: Any) -> None:
        fn(tuple(args), kwargs)

    return hook


@contextmanager
def hooked(
    outputs: Sequence[tuple[nn.Module, OutputHook]] = (),
    inputs: Sequence[tuple[nn.Module, InputHook]] = (),
) -> Iterator[None]:
    """Install forward hooks for the duration of a ``with`` block.

    Args:
        outputs: ``(module, fn)`` pairs; ``fn`` sees the module's hidden-state output and may
            return a replacement tensor of the same shape.
        inputs: ``(module, fn)`` pairs; ``fn`` observes the module's forward arguments
            before it runs (input hooks run before output hooks of inner modules).

    Yields:
        Nothing; the hooks are removed on exit, whatever happens.
    """
    with ExitStack() as stack:
        for module, observe in inputs:
            handle = module.register_forward_pre_hook(_input_hook(observe), with_kwargs=True)
            stack.callback(handle.remove)
        for module, fn in outputs:
            handle = module.register_forward_hook(_output_hook(fn))
            stack.callback(handle.remove)
        yield


def _repeat_rows(value: Any, rows: int, repeats: int, memo: dict[int, Any]) -> Any:
    # Batch tensors are those of two or more dimensions whose first is the batch: hidden
    # states, position ids, 4-D attention masks, rotary (cos, sin). 1-D tensors (cache
    # positions) and broadcast ones (first dimension 1 while rows > 1) pass unchanged.
    if isinstance(value, torch.Tensor):
        if value.ndim < 2 or value.shape[0] != rows:
            return value
        key = id(value)
        if key not in memo:
            memo[key] = (value, value.repeat_interleave(repeats, dim=0))
        return memo[key][1]
    if isinstance(value, tuple):
        return tuple(_repeat_rows(v, rows, repeats, memo) for v in value)
    if isinstance(value, list):
        return [_repeat_rows(v, rows, repeats, memo) for v in value]
    if isinstance(value, dict):
        return {k: _repeat_rows(v, rows, repeats, memo) for k, v in value.items()}
    return value


@contextmanager
def fanned_out(blocks: Sequence[nn.Module], start: int, repeats: int) -> Iterator[None]:
    """Run the blocks before ``start`` once per row, and the rest on ``repeats`` copies of it.

    Inside the ``with`` block, a forward pass on ``B`` rows computes blocks ``0..start-1`` on
    the ``B`` rows; at the input of block ``start`` every batch tensor of its arguments
    (hidden states, masks, position ids and embeddings) is repeated ``repeats`` times in
    place (row ``b`` becomes rows ``b·repeats .. b·repeats + repeats - 1``), and so are the
    batch tensors handed to every later block. The model's output then has ``B·repeats``
    rows, equal (to float rounding) to a forward of the repeated batch, while the shared
    blocks ran once. Use it for likelihood passes without a cache (``use_cache=False``): a
    cache would hold ``B`` rows below ``start`` and ``B·repeats`` above.

    Args:
        blocks: the decoder blocks in order.
        start: the first block to run on the repeated rows (0 repeats everything).
        repeats: copies of each row (1 changes nothing).

    Yields:
        Nothing; the hooks are removed on exit, whatever happens.
    """
    if repeats < 1 or not 0 <= start <= len(blocks):
        raise ValueError(f"fanned_out: repeats {repeats} / start block {start} out of range")
    if repeats == 1 or start == len(blocks):
        yield
        return
    # One memo per forward pass (reset at block ``start``), so a mask shared by every block
    # is repeated once, not once per block.
    memo: dict[int, Any] = {}
    rows_seen: list[int] = [0]

    def repeat(module: nn.Module, args: Any, kwargs: Any) -> tuple[Any, Any]:
        if module is blocks[start]:
            memo.clear()
            hidden = args[0] if args else kwargs.get("hidden_states")
            if not isinstance(hidden, torch.Tensor):
                raise TypeError("fanned_out: block input without hidden states")
            rows_seen[0] = hidden.shape[0]
        rows = rows_seen[0]
        args = tuple(_repeat_rows(a, rows, repeats, memo) for a in args)
        kwargs = {k: _repeat_rows(v, rows, repeats, memo) for k, v in kwargs.items()}
        return args, kwargs

    with ExitStack() as stack:
        for block in blocks[start:]:
            handle = block.register_forward_pre_hook(repeat, with_kwargs=True)
            stack.callback(handle.remove)
        try:
            yield
        finally:
            memo.clear()


def hook_count(model: nn.Module) -> int:
    """Number of forward and pre-forward hooks installed anywhere in ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
