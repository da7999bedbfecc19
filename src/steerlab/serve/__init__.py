"""``steerlab serve``: steered generation over an OpenAI-compatible HTTP API, with per-request
steering batched across requests, and a playground page.

    >>> from steerlab.serve import create_app, run_server
    >>> app = create_app(model, tokenizer, vectors=["vectors/"])
    >>> run_server(app, port=8000)   # or any ASGI server: uvicorn module:app
    >>> with serve_in_background(app) as url:   # a notebook, a script
    ...     ...
"""

from steerlab.serve.app import create_app
from steerlab.serve.catalog import VectorCatalog
from steerlab.serve.config import API_KEY_ENV, ServeConfig
from steerlab.serve.protocol import ApiError
from steerlab.serve.server import run_server, serve_in_background

__all__ = [
    "API_KEY_ENV",
    "ApiError",
    "ServeConfig",
    "VectorCatalog",
    "create_app",
    "run_server",
    "serve_in_background",
]
