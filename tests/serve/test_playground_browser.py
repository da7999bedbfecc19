"""The playground page (``GET /``) of ``steerlab serve`` in a real browser, against a live server.

Three checks, from cheapest to dearest:

- the page file itself: one self-contained file that names no external URL and has every
  element id the contract (and the tests below) rely on;
- on a tiny random llama (no download): the page loads the catalog, draws the norm chart,
  streams one column per coefficient, shows a server error in its column, stops on Stop, and
  asks for the API key where the server needs one;
- on the embedded model (slow): the shipped ``happy_sad`` vector at three coefficients gives
  three different streamed texts, nothing leaves 127.0.0.1, and a full-page screenshot is kept
  as a test artifact (``$STEERLAB_TEST_ARTIFACTS``, default ``.test-artifacts/``).

Without a browser the browser tests fail where one is required (``CI`` or
``STEERLAB_REQUIRE_BROWSER`` set: .ci/run installs Chromium) and are skipped loudly elsewhere.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from live import live_server

from browser import artifacts_dir, open_local_page, page_problems, require_browser
from conftest import make_model
from steerlab.data.pairs import builtin_pairs
from steerlab.extract import extract
from steerlab.serve import ServeConfig, create_app

CONTRACT_IDS = (
    "vector",
    "layers",
    "operator",
    "positions",
    "scale",
    "max-tokens",
    "temperature",
    "prompt",
    "coefficients",
    "add-coefficient",
    "run",
    "stop",
    "norms",
    "generations",
    "api-key",
)
ALL_SETTLED = (
    "n => { const columns = [...document.querySelectorAll('.generation')];"
    " return columns.length === n && columns.every(c => c.dataset.state !== 'running'); }"
)
TINY_MAX_TOKENS = 6


def page_text() -> str:
    """The playground as shipped (package data of ``steerlab.serve``)."""
    return (resources.files("steerlab.serve") / "playground.html").read_text(encoding="utf-8")


class _Elements(HTMLParser):
    """Every start tag's name and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_page_is_self_contained_and_has_the_contract_ids() -> None:
    text = page_text()
    parser = _Elements()
    parser.feed(text)
    ids = [attrs["id"] for _, attrs in parser.tags if attrs.get("id")]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert set(CONTRACT_IDS) <= set(ids), set(CONTRACT_IDS) - set(ids)
    # Nothing is loaded from anywhere: no src/href to another host, no @import, no url(http...).
    for tag, attrs in parser.tags:
        for name in ("src", "href", "action", "srcset", "poster"):
            value = (attrs.get(name) or "").strip()
            assert not re.match(r"^(https?:)?//", value, re.IGNORECASE), (tag, name, value)
        assert not (tag == "script" and attrs.get("src")), "an external script"
        assert not (tag == "link" and attrs.get("rel") == "stylesheet"), "an external stylesheet"
    assert "@import" not in text
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text, re.IGNORECASE)
    # The one absolute URL allowed is the SVG namespace, which is a name, not a fetch.
    assert set(re.findall(r"https?://[^\s\"'<>)]+", text)) == {"http://www.w3.org/2000/svg"}
    # Everything the page fetches is one of this server's own endpoints.
    fetched = set(re.findall(r"""(?:fetch|getJSON)\(\s*["'`]([^"'`]+)""", text))
    assert fetched == {"v1/models", "v1/vectors", "v1/chat/completions"}, fetched
    selects = {attrs.get("id"): tag for tag, attrs in parser.tags if tag == "select"}
    assert {"vector", "operator", "positions", "scale"} <= set(selects)


# ---------- a live server on a tiny random llama ----------


@pytest.fixture(scope="module")
def tiny_served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    """A tiny llama, its tokenizer and a folder with one vector extracted from it
    (``honesty``): what :func:`tiny_app` serves."""
    model, tokenizer = make_model("llama", layers=4, hidden=48)
    folder = tmp_path_factory.mktemp("vectors")
    vector = extract(model, tokenizer, builtin_pairs("honesty", limit=6), "mean_diff", "all")
    vector.save(folder / "honesty.safetensors")
    return model, tokenizer, folder


def tiny_app(served: tuple[Any, Any, Path], config: ServeConfig | None = None) -> Any:
    """A fresh app (its engine stops with its server) on the tiny llama."""
    model, tokenizer, folder = served
    return create_app(model, tokenizer, vectors=[folder], config=config, shipped_vectors=False)


def _columns(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        ".generation",
        "cs => cs.map(c => ({coefficient: c.dataset.coefficient, state: c.dataset.state,"
        " text: c.querySelector('.text').textContent,"
        " error: c.querySelector('.error-message').textContent}))",
    )


def _set_coefficients(page: Any, values: list[str]) -> None:
    """Make the coefficient rows exactly ``values``, with the page's own buttons."""
    rows = page.locator(".coefficient-row")
    while rows.count() < len(values):
        page.click("#add-coefficient")
    while rows.count() > len(values):
        rows.last.locator(".remove-coefficient").click()
    for index, value in enumerate(values):
        page.locator("input.coefficient-value").nth(index).fill(value)


def test_playground_drives_a_live_server(tiny_served: tuple[Any, Any, Path]) -> None:
    require_browser()
    with live_server(tiny_app(tiny_served)) as base, open_local_page(base + "/") as (page, found):
        page.wait_for_selector("#vector option[value=honesty]", state="attached")
        assert page.input_value("#vector") == "honesty"
        assert page.input_value("#layers") != ""  # the vector's default layers
        assert page.input_value("#temperature") == "0"
        assert page.locator(".coefficient-row").count() == 3  # the suggested coefficients
        # One bar per layer of the vector; the default layers are highlighted.
        assert page.locator("#norms rect.bar").count() == 4
        assert page.locator("#norms rect.bar.steered").count() >= 1
        # Slider and number stay in sync both ways.
        page.locator("input.coefficient").first.fill("0.25")
        assert page.locator("input.coefficient-value").first.input_value() == "0.25"
        page.locator("input.coefficient-value").first.fill("-0.3")
        assert page.locator("input.coefficient").first.input_value() == "-0.3"

        page.fill("#layers", "1-3")
        assert page.locator("#norms rect.bar.steered").count() == 3
        page.fill("#max-tokens", str(TINY_MAX_TOKENS))
        _set_coefficients(page, ["-1", "0", "1"])
        page.click("#run")
        page.wait_for_function(ALL_SETTLED, arg=3)
        columns = _columns(page)
        assert [c["coefficient"] for c in columns] == ["-1", "0", "1"]
        assert [c["state"] for c in columns] == ["done"] * 3, columns
        assert columns[1]["text"], columns  # unsteered, the random model babbles on
        assert len({c["text"] for c in columns}) > 1, columns  # steering changed something

        # A bad value is refused in the page, before any request.
        page.fill("#layers", "1-9")
        assert "no layer" in page.inner_text("#layers-hint")
        page.click("#run")
        assert "no layer" in page.inner_text("#status")
        assert page.locator(".generation").count() == 3  # the last run's columns stay
        # What only the server can refuse is shown in the column.
        page.fill("#layers", "1")
        page.select_option("#operator", "clamp")
        page.fill("#max-tokens", "100000")
        _set_coefficients(page, ["1"])
        page.click("#run")
        page.wait_for_function(ALL_SETTLED, arg=1)
        (column,) = _columns(page)
        assert column["state"] == "error"
        assert "max_tokens" in column["error"], column

        # Stop aborts the running streams; the page settles and can run again.
        page.select_option("#operator", "add")
        page.fill("#max-tokens", "200")
        _set_coefficients(page, ["-1", "1"])
        page.click("#run")
        page.click("#stop")
        page.wait_for_function(ALL_SETTLED, arg=2)
        assert [(c["state"], c["error"]) for c in _columns(page)] == [("error", "Stopped.")] * 2
        assert page.inner_text("#status").startswith("Stopped")
        assert page.is_enabled("#run") and not page.is_enabled("#stop")
        page.fill("#max-tokens", str(TINY_MAX_TOKENS))
        page.click("#run")  # the server freed the stopped rows and serves on
        page.wait_for_function(ALL_SETTLED, arg=2)
        assert [c["state"] for c in _columns(page)] == ["done"] * 2
    # The 400 answer logs a failed resource load, and Stop aborts the streams: nothing else.
    console = [e for e in found["console_errors"] if "status of 400" not in e]
    failed = [f for f in found["failed_requests"] if "/v1/chat/completions" not in f]
    assert not console and not failed and not found["page_errors"], page_problems(found)
    assert not found["blocked_requests"]


def test_playground_asks_for_the_api_key(tiny_served: tuple[Any, Any, Path]) -> None:
    require_browser()
    app = tiny_app(tiny_served, ServeConfig(api_key="sesame"))
    with live_server(app) as base, open_local_page(base + "/") as (page, found):
        page.wait_for_function("() => document.getElementById('status').textContent.length > 0")
        assert "API key" in page.inner_text("#status")
        assert not page.is_enabled("#run")
        page.fill("#api-key", "sesame")
        page.dispatch_event("#api-key", "change")
        page.wait_for_selector("#vector option[value=honesty]", state="attached")
        page.fill("#max-tokens", "3")
        _set_coefficients(page, ["0"])
        page.click("#run")
        page.wait_for_function(ALL_SETTLED, arg=1)
        assert [c["state"] for c in _columns(page)] == ["done"]
    assert all("status of 401" in e for e in found["console_errors"]), found["console_errors"]
    assert not found["page_errors"] and not found["blocked_requests"]


# ---------- the embedded model and its shipped vector (slow) ----------


@pytest.mark.slow
def test_three_coefficients_stream_three_texts_on_the_embedded_model() -> None:
    require_browser()
    import steerlab

    model, tokenizer = steerlab.load_model("default")
    app = create_app(model, tokenizer)  # the embedded model: the shipped vectors are offered
    screenshot = artifacts_dir() / "playground.png"
    with live_server(app) as base, open_local_page(base + "/") as (page, found):
        page.wait_for_selector("#vector option[value=happy_sad]", state="attached")
        page.select_option("#vector", "happy_sad")
        page.fill("#prompt", "Tell me about your weekend.")
        page.fill("#layers", "12-18")
        page.select_option("#operator", "add")
        page.select_option("#positions", "all")
        page.select_option("#scale", "norm")
        page.fill("#max-tokens", "24")
        page.fill("#temperature", "0")
        _set_coefficients(page, ["-0.1", "0", "0.1"])
        assert page.locator("#norms rect.bar.steered").count() == 7
        page.click("#run")
        page.wait_for_function(ALL_SETTLED, arg=3, timeout=240_000)
        columns = _columns(page)
        page.evaluate("window.scrollTo(0, 0)")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    assert [c["coefficient"] for c in columns] == ["-0.1", "0", "0.1"]
    assert [c["state"] for c in columns] == ["done"] * 3, columns
    texts = [c["text"].strip() for c in columns]
    assert all(texts), columns
    assert len(set(texts)) == 3, texts  # three pairwise different generations
    assert page_problems(found) == [], page_problems(found)
    origins = {re.sub(r"^(\w+://[^/]+).*$", r"\1", url) for url in found["requests"]}
    # Nothing but the live server was asked for anything (data: URLs are no requests out).
    assert {origin for origin in origins if not origin.startswith("data:")} == {base}, origins
    assert screenshot.stat().st_size > 10_000
