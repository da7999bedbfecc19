"""Opening an HTML report or a served page in a real browser: headless Chromium via playwright.

The browser is the system's (Debian's ``chromium`` package, or ``$STEERLAB_CHROMIUM``), never
one that playwright downloads: :func:`browser_or_reason` says why none can start,
:func:`check_in_browser` loads a file offline, with every request that is not ``file://``
aborted and recorded, and reports what a reader would see go wrong, and :func:`open_local_page`
opens a page of a local server, with every request that leaves the machine aborted and recorded.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM_ENV = "STEERLAB_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1200, "height": 900}
# References inside inline SVGs (url(#id), href="#id") that name no element of the page.
BROKEN_REFERENCES_JS = """() => {
  const broken = new Set();
  for (const element of document.querySelectorAll("svg, svg *")) {
    for (const attribute of element.attributes) {
      const ids = [...attribute.value.matchAll(/url\\(\\s*#([^)\\s]+)\\s*\\)/g)].map((m) => m[1]);
      if (attribute.localName === "href" && attribute.value.startsWith("#")) {
        ids.push(attribute.value.slice(1));
      }
      for (const id of ids) if (!document.getElementById(id)) broken.add(id);
    }
  }
  return [...broken];
}"""
TIMEOUT_MS = 60_000
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS_ENV = "STEERLAB_TEST_ARTIFACTS"
REQUIRE_ENVS = ("CI", "STEERLAB_REQUIRE_BROWSER")


def artifacts_dir() -> Path:
    """Where test artifacts are kept: ``$STEERLAB_TEST_ARTIFACTS`` or ``.test-artifacts/``."""
    return Path(os.environ.get(ARTIFACTS_ENV) or REPO / ".test-artifacts")


def require_browser() -> None:
    """Fail (where a browser is required) or skip loudly when no browser can start."""
    reason = browser_or_reason()
    if reason is None:
        return
    required = [name for name in REQUIRE_ENVS if os.environ.get(name, "").strip() not in ("", "0")]
    if required:
        pytest.fail(f"NO BROWSER although {' and '.join(required)} is set: {reason}")
    message = f"NO BROWSER: the page was not checked in Chromium: {reason}"
    warnings.warn(message, stacklevel=2)
    print(f"\nWARNING: {message}")
    pytest.skip(message)


def chromium_path() -> str:
    """The Chromium executable to use: ``$STEERLAB_CHROMIUM``, else Debian's."""
    return os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM


def browser_or_reason() -> str | None:
    """None when headless Chromium starts under playwright; else why it does not."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "the Python package playwright is not installed (pip install playwright)"
    executable = chromium_path()
    if not (Path(executable).is_file() or shutil.which(executable)):
        return f"no Chromium at {executable} (apt-get install chromium, or set ${CHROMIUM_ENV})"
    try:
        with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            context.close()
    except Exception as exc:  # any failure to start is a reason, reported not raised
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"Chromium at {executable} did not start under playwright: {first}"
    return None


def _has_ink(png: bytes) -> bool:
    """True when a screenshot has dark pixels (a drawn plot, not a blank box)."""
    from PIL import Image  # matplotlib's own dependency

    darkest, _ = Image.open(io.BytesIO(png)).convert("L").getextrema()
    return bool(darkest < 128)


def check_in_browser(html_path: Path, screenshot: Path) -> dict[str, Any]:
    """Open ``html_path`` in headless Chromium, check it and save a full-page screenshot.

    Every request that does not go to a ``file://`` URL is aborted and recorded. Each
    ``<svg>`` in the page is scrolled into view, measured and photographed (it must show
    dark pixels), and every ``url(#id)`` / ``href="#id"`` inside the SVGs must name an element.

    Returns:
        ``{"console_errors": [...], "page_errors": [...], "failed_requests": [...],
        "blocked_requests": [...], "broken_references": [...], "plots": [{"index", "width",
        "height", "visible", "inked"}], "title": str, "screenshot": Path}``.

    Raises:
        AssertionError: an error on the console or in the page, a failed or blocked request,
            a broken reference, or a plot that is not visible, of zero size or blank.
    """
    from playwright.sync_api import sync_playwright

    found: dict[str, Any] = {
        "console_errors": [],
        "page_errors": [],
        "failed_requests": [],
        "blocked_requests": [],
        "broken_references": [],
        "plots": [],
    }

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file://", "data:", "about:")):
            route.continue_()
        else:
            found["blocked_requests"].append(url)
            route.abort()

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            offline=True,
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            context.route("**/*", route)
            page = context.new_page()
            page.on(
                "console",
                lambda m: m.type == "error" and found["console_errors"].append(m.text),
            )
            page.on("pageerror", lambda e: found["page_errors"].append(str(e)))
            page.on(
                "requestfailed",
                lambda r: found["failed_requests"].append(f"{r.url}: {r.failure}"),
            )
            page.goto(Path(html_path).resolve().as_uri(), wait_until="load")
            found["title"] = page.title()
            plots = page.locator("svg")
            for index in range(plots.count()):
                plot = plots.nth(index)
                plot.scroll_into_view_if_needed()
                box = plot.bounding_box()
                visible = bool(plot.is_visible() and box and box["width"] and box["height"])
                found["plots"].append(
                    {
                        "index": index,
                        "width": box["width"] if box else 0.0,
                        "height": box["height"] if box else 0.0,
                        "visible": visible,
                        "inked": visible and _has_ink(plot.screenshot()),
                    }
                )
            found["broken_references"] = page.evaluate(BROKEN_REFERENCES_JS)
            page.evaluate("window.scrollTo(0, 0)")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            found["screenshot"] = screenshot
        finally:
            context.close()
    problems = [
        f"{kind}: {found[kind]}"
        for kind in (
            "console_errors",
            "page_errors",
            "failed_requests",
            "blocked_requests",
            "broken_references",
        )
        if found[kind]
    ]
    hidden = [p for p in found["plots"] if not (p["visible"] and p["inked"])]
    if hidden:
        problems.append(f"plots not visible, of zero size or blank: {hidden}")
    assert not problems, f"{html_path} in Chromium: " + "; ".join(problems)
    return found


LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


@contextlib.contextmanager
def open_local_page(url: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Open ``url`` of a server on this machine in headless Chromium; yield ``(page, found)``.

    Every request to a host other than ``127.0.0.1``/``localhost`` (or of a scheme other than
    http(s), ``data:``, ``about:`` and ``blob:``) is aborted and recorded, so a page that
    fetches anything from the network shows it in ``found["blocked_requests"]``. ``found``
    also collects ``console_errors``, ``page_errors`` and ``failed_requests`` while the page
    is open; :func:`page_problems` lists what went wrong.
    """
    from playwright.sync_api import sync_playwright

    found: dict[str, Any] = {
        "console_errors": [],
        "page_errors": [],
        "failed_requests": [],
        "blocked_requests": [],
        "requests": [],
    }

    def route(route: Any) -> None:
        request_url = route.request.url
        found["requests"].append(request_url)
        parts = urlsplit(request_url)
        local = parts.scheme in ("http", "https") and parts.hostname in LOCAL_HOSTS
        if local or parts.scheme in ("data", "about", "blob"):
            route.continue_()
        else:
            found["blocked_requests"].append(request_url)
            route.abort()

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            context.route("**/*", route)
            page = context.new_page()
            page.on(
                "console",
                lambda m: m.type == "error" and found["console_errors"].append(m.text),
            )
            page.on("pageerror", lambda e: found["page_errors"].append(str(e)))
            page.on(
                "requestfailed",
                lambda r: found["failed_requests"].append(f"{r.url}: {r.failure}"),
            )
            page.goto(url, wait_until="load")
            yield page, found
        finally:
            context.close()


def page_problems(found: dict[str, Any]) -> list[str]:
    """What went wrong in a page opened by :func:`open_local_page` (empty when nothing did)."""
    kinds = ("console_errors", "page_errors", "failed_requests", "blocked_requests")
    return [f"{kind}: {found[kind]}" for kind in kinds if found[kind]]
