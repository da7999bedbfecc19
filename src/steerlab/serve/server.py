"""Running the app: uvicorn on a host and port, with the port checked first."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from steerlab.errors import SpecError


def check_port(host: str, port: int) -> None:
    """Raise unless ``host:port`` can be listened on (so a busy port is one clear line).

    Raises:
        SpecError: the port is in use, or the host is not an address of this machine.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SpecError(
                    f"--port {port}: another program listens on {host}:{port}"
                ) from None
            raise SpecError(f"--host {host}: cannot listen there ({exc.strerror or exc})") from None


def not_a_cancellation(record: logging.LogRecord) -> bool:
    """False for uvicorn's tracebacks of tasks cancelled by a forced quit (Ctrl-C twice while
    requests are in flight): stopping is what was asked, not an error to show.

    A request's task is logged with its exception; the lifespan task's traceback arrives as
    text (Starlette sends it formatted in ``lifespan.shutdown.failed``).
    """
    kind = record.exc_info[0] if record.exc_info else None
    if kind is not None and issubclass(kind, (asyncio.CancelledError, KeyboardInterrupt)):
        return False
    text = str(record.msg)
    return not (text.startswith("Traceback") and text.rstrip().endswith("CancelledError"))


def run_server(
    app: Starlette, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info"
) -> None:
    """Serve ``app`` until Ctrl-C (uvicorn, one process: the model lives in it). The first
    Ctrl-C lets requests in flight finish (5 s at most); a second one quits at once.

    Raises:
        SpecError: the port is in use or the host cannot be listened on.
    """
    check_port(host, port)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5
    )  # configures uvicorn's loggers: the filter goes on after
    logging.getLogger("uvicorn.error").addFilter(not_a_cancellation)
    server = uvicorn.Server(config)
    try:
        with contextlib.suppress(KeyboardInterrupt):  # a forced quit: uvicorn raises it again
            server.run()
    finally:
        # A forced quit skips the app's shutdown: stop the engine here, or its thread is
        # still in a forward pass when the interpreter exits (and the process aborts).
        state = getattr(app.state, "steerlab", None)
        if state is not None:
            state.engine.close()
    if not server.started:
        raise SpecError(f"--host {host} --port {port}: the server could not start (see above)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``host`` now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve_in_background(
    app: Starlette,
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    log_level: str = "warning",
    start_timeout_s: float = 30.0,
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread while the ``with`` block runs (a
    notebook, a benchmark, a test); yields the base URL, e.g. ``http://127.0.0.1:8123``
    (the OpenAI base URL is that plus ``/v1``).

    Args:
        app: the app of :func:`~steerlab.serve.create_app`.
        host: the address to listen on.
        port: the port; default, a free one.
        log_level: uvicorn's log level.
        start_timeout_s: how long to wait for the server to listen.

    Raises:
        SpecError: the port is in use, or the server did not start in time.
    """
    port = free_port(host) if port is None else port
    check_port(host, port)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="steerlab-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise SpecError(f"{host}:{port}: the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(start_timeout_s)
