"""The HTML report in a real browser: headless Chromium renders it offline without errors, every
plot is visible, and a full-page screenshot is kept as a test artifact.

The screenshot goes to ``$STEERLAB_TEST_ARTIFACTS`` (default ``.test-artifacts/`` at the
repository root). Without a browser the test fails where one is required (``CI`` or
``STEERLAB_REQUIRE_BROWSER`` set: .ci/run installs Chromium) and is skipped loudly elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from html_run_folder import make_run

from browser import artifacts_dir, check_in_browser, require_browser
from steerlab.report.html import write_report


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
