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


def hook_count(model: nn.Module) -> int:
    """Number of forward and pre-forward hooks installed anywhere in ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
