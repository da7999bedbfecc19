"""The HTML report in a real browser: headless Chromium renders it offline without errors, every
plot is visible, and a full-page screenshot is kept as a test artifact.

The screenshot goes to ``$STEERLAB_TEST_ARTIFACTS`` (default ``.test-artifacts/`` at the
repository root). Without a browser the test fails where one is required (``CI`` or
``STEERLAB_REQUIRE_BROWSER`` set: .ci/run installs Chromium) and is skipped loudly elsewhere.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from browser import browser_or_reason, check_in_browser
from html_run_folder import make_run

from steerlab.report.html import write_report

REPO = Path(__file__).resolve().parents[2]
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
    message = f"NO BROWSER: the report was not checked in Chromium: {reason}"
    warnings.warn(message, stacklevel=2)
    print(f"\nWARNING: {message}")
    pytest.skip(message)


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    require_browser()
    report = write_report(make_run(tmp_path / "run"))
    screenshot = artifacts_dir() / "report.png"
    found = check_in_browser(report, screenshot)
    assert found["title"] == "synthetic <study> & co · steerlab report"
    assert len(found["plots"]) == 3  # three plot files; one listed twice is inlined once
    for plot in found["plots"]:
        assert plot["visible"] and plot["inked"], plot
        assert plot["width"] > 300 and plot["height"] > 150, plot
    assert found["broken_references"] == []
    assert screenshot.stat().st_size > 10_000
