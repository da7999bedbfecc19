"""Running the app: uvicorn on a host and port, with the port checked first."""

from __future__ import annotations

import errno
import socket

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


def run_server(
    app: Starlette, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info"
) -> None:
    """Serve ``app`` until Ctrl-C (uvicorn, one process: the model lives in it).

    Raises:
        SpecError: the port is in use or the host cannot be listened on.
    """
    check_port(host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
