"""serve_in_background: the app served in a thread while a block runs, and stopped after."""

from __future__ import annotations

import pytest
from live import request

from conftest import make_model
from steerlab.errors import SpecError
from steerlab.serve import create_app, serve_in_background
from steerlab.serve.server import free_port


def test_serves_while_the_block_runs_and_stops_after() -> None:
    model, tokenizer = make_model("llama")
    app = create_app(model, tokenizer)
    port = free_port()
    with serve_in_background(app, port=port) as base:
        assert base == f"http://127.0.0.1:{port}"
        assert request(base, "/health")[0] == 200
        with (
            pytest.raises(SpecError, match="another program listens"),
            serve_in_background(app, port=port),
        ):
            pass
    with pytest.raises(OSError):
        request(base, "/health")
