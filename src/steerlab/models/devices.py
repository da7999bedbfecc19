"""Where a model runs: checking devices and device maps, and finding where its inputs go.

A model loaded with a device map (model parallel: ``load_model(..., device_map="auto")``) is
dispatched by accelerate: each module runs on its own execution device, and an offloaded
module's weights sit on the ``meta`` device (or on the CPU, or on disk) until accelerate loads
them for its forward pass. So the weights' device is not where inputs must go:
:func:`model_device` asks accelerate's hook instead.

Upstream assumption (see :mod:`steerlab.upstream`): accelerate keeps a module's hook in
``module._hf_hook`` (an ``AlignDevicesHook`` with ``execution_device``, or a ``SequentialHook``
of hooks in ``.hooks``); tested in ``tests/test_device_map.py``.
"""

from __future__ import annotations

from typing import Any

import torch

from steerlab.errors import ModelLoadError


def check_device(device: str | None) -> None:
    """Refuse a device that torch does not understand or that this machine lacks.

    Raises:
        ModelLoadError: naming the device.
    """
    if device is None:
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ModelLoadError(
            f"device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)"
        ) from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r}: CUDA is not available on this machine")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise ModelLoadError(
            f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s)"
        )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device {device!r}: MPS is not available on this machine")
    if parsed.type == "meta":
        raise ModelLoadError(f"device {device!r} holds no weights; a model cannot run there")


def check_device_map(device_map: str | dict[str, Any] | None) -> None:
    """Refuse a dict device map with a device this machine lacks (a GPU index counts as
    ``cuda:N``; ``"disk"`` offloads). Strategy names are left to transformers.

    Raises:
        ModelLoadError: naming the module and the device.
    """
    if not isinstance(device_map, dict):
        return
    if not device_map:
        raise ModelLoadError('the device map is empty: map module names to devices, e.g. {"": 0}')
    for module, where in device_map.items():
        if where == "disk":
            continue
        if isinstance(where, bool) or not isinstance(where, str | int):
            raise ModelLoadError(f"device map: {module!r} -> {where!r} is not a device")
        if isinstance(where, int) and where < 0:
            raise ModelLoadError(f"device map: {module!r} -> {where}: a GPU index is 0 or more")
        try:
            check_device(f"cuda:{where}" if isinstance(where, int) else where)
        except ModelLoadError as err:
            raise ModelLoadError(f"device map: {module!r} -> {err}") from None


def _execution_device(module: torch.nn.Module) -> torch.device | None:
    """Where accelerate runs ``module`` (its ``AlignDevicesHook``), or ``None`` if no hook says.

    A model dispatched by accelerate (``device_map=...``, ``dispatch_model``, ``cpu_offload``)
    may keep a module's weights offloaded (on the ``meta`` device, on the CPU or on disk) and
    load them onto the execution device only while it runs: the weights' device is then not
    where inputs must go.
    """
    hook = getattr(module, "_hf_hook", None)
    # Several hooks on one module are chained in a SequentialHook (``.hooks``).
    for candidate in (hook, *getattr(hook, "hooks", ())):
        execution = getattr(candidate, "execution_device", None)
        if execution is not None:
            return torch.device(execution)
    return None


def _with_ancestors(model: torch.nn.Module, module: torch.nn.Module) -> list[torch.nn.Module]:
    """``module``, then each module that contains it, up to ``model`` itself."""
    name = next((n for n, m in model.named_modules() if m is module), None)
    if name is None:
        return [module, model]
    parts = name.split(".") if name else []
    return [model.get_submodule(".".join(parts[:i])) for i in range(len(parts), -1, -1)]


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's input embeddings (where input ids must go).

    With a device map (model parallel, :func:`load_model`'s ``device_map``) this is the
    embedding layer's execution device, never ``meta``: an offloaded embedding layer's
    weights sit on the ``meta`` device until accelerate loads them for its forward pass.
    Looked up in order: the embeddings' own accelerate hook, their weight (when it is not
    offloaded), the hook of a module containing them, any weight that is not offloaded.
    """
    getter = getattr(model, "get_input_embeddings", None)
    embeddings = getter() if callable(getter) else None
    if isinstance(embeddings, torch.nn.Module):
        execution = _execution_device(embeddings)
        if execution is not None:
            return execution
        weight = getattr(embeddings, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
            return weight.device
        for container in _with_ancestors(model, embeddings)[1:]:
            execution = _execution_device(container)
            if execution is not None:
                return execution
    else:
        execution = _execution_device(model)
        if execution is not None:
            return execution
    for parameter in model.parameters():
        if parameter.device.type != "meta":
            return parameter.device
    return torch.device("cpu")


def offloaded_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the parameters a device map offloaded (on the ``meta`` device between passes).

    Code that reads or edits weights in place (folding steering into a checkpoint) cannot
    work on these: they are loaded only inside a forward pass.
    """
    return [name for name, value in model.named_parameters() if value.device.type == "meta"]
