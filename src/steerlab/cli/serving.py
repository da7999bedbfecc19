"""``steerlab serve``: the OpenAI-compatible steering server and its playground."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from steerlab.cli.common import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    LayersPathOpt,
    ModelOpt,
    check_count,
    check_number,
    console,
    friendly_errors,
    parse_device_map,
    print_note,
)
from steerlab.errors import SpecError

DEFAULT_KEY_ENV = "STEERLAB_API_KEY"  # steerlab.serve.API_KEY_ENV, without importing the server


def check_vector_sources(sources: list[Path]) -> None:
    """Fail before the model loads when a ``--vectors`` source is missing or holds no vector.

    Raises:
        SpecError: a path that does not exist, or a folder without ``*.safetensors`` files.
    """
    for source in sources:
        path = source.expanduser()
        if not path.exists():
            raise SpecError(f"--vectors {source}: no such file or folder")
        if path.is_dir() and not any(path.glob("*.safetensors")):
            raise SpecError(
                f"--vectors {source}: no steering vector (*.safetensors) in this folder"
            )


@friendly_errors
def serve(
    model: ModelOpt = "default",
    vectors: Annotated[
        list[Path] | None,
        typer.Option(
            "--vectors",
            help="Folder of vectors (its *.safetensors) or one vector file; repeatable. The "
            "vectors shipped with steerlab (happy_sad) are offered too when they fit the model.",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model_name: Annotated[
        str | None,
        typer.Option(help="The model id clients send (default: the --model value)."),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the API key (default: STEERLAB_API_KEY, used "
            "when set); with a key, every /v1 request needs 'Authorization: Bearer KEY'. "
            "Naming a variable that is not set is an error, not a server without a key.",
            show_default=False,
        ),
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens one request may generate.")] = 1024,
    max_prompt_tokens: Annotated[int, typer.Option(help="Longest prompt, in tokens.")] = 4096,
    max_batch_size: Annotated[int, typer.Option(help="Most rows decoded together.")] = 16,
    max_batches: Annotated[
        int,
        typer.Option(
            help="Most batches in progress at once; their steps take turns, so a new "
            "request does not wait for a long one to finish."
        ),
    ] = 4,
    max_queue: Annotated[
        int, typer.Option(help="Most rows waiting; more requests are answered 429.")
    ] = 64,
    batch_window_ms: Annotated[
        float, typer.Option(help="How long a request waits for others to batch with.")
    ] = 20.0,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
    layers_path: LayersPathOpt = None,
) -> None:
    """Serve steered generation: OpenAI-compatible /v1 API with per-request steering, and a
    playground page at /."""
    from steerlab.models import load_model
    from steerlab.serve import ServeConfig, create_app, run_server
    from steerlab.serve.server import check_port

    if not 0 < port < 65536:
        raise SpecError(f"--port {port}: not a TCP port (1-65535)")
    for option, count in (
        ("--max-tokens", max_tokens),
        ("--max-prompt-tokens", max_prompt_tokens),
        ("--max-batch-size", max_batch_size),
        ("--max-batches", max_batches),
        ("--max-queue", max_queue),
    ):
        check_count(count, option)
    check_number(batch_window_ms, "--batch-window-ms")
    parsed_device_map = parse_device_map(device_map)
    check_vector_sources(vectors or [])
    key_variable = api_key_env or DEFAULT_KEY_ENV
    key = os.environ.get(key_variable) or None
    if api_key_env is not None and key is None:
        raise SpecError(
            f"--api-key-env {api_key_env}: no such environment variable (or it is empty); set "
            "it, or leave the option out to serve without a key"
        )
    config = ServeConfig(
        max_tokens=max_tokens,
        default_max_tokens=min(128, max_tokens),
        max_prompt_tokens=max_prompt_tokens,
        max_batch_size=max_batch_size,
        max_batches=max_batches,
        max_queue=max_queue,
        batch_window_ms=batch_window_ms,
        api_key=key,
    )
    check_port(host, port)  # before the model loads: a busy port fails in a second
    loaded, tokenizer = load_model(model, dtype=dtype, device=device, device_map=parsed_device_map)
    app = create_app(
        loaded,
        tokenizer,
        vectors=list(vectors or []),
        model_name=model_name or model,
        config=config,
        layers_path=layers_path,
    )
    catalog = app.state.steerlab.catalog
    for entry in catalog:
        if entry.error is not None:
            print_note(f"vector {entry.name} is listed but cannot steer this model: {entry.error}")
    usable = [entry.name for entry in catalog if entry.error is None]
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    console.print(
        f"steerlab serve: model {model_name or model}, "
        f"{len(usable)} vector(s){': ' + ', '.join(usable) if usable else ''}"
        + (f"; API key from ${key_variable}" if key else "")
    )
    console.print(f"  playground      http://{shown}:{port}/")
    console.print(f"  OpenAI base URL http://{shown}:{port}/v1")
    run_server(app, host, port)
