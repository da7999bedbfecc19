"""steerlab.report.html: the self-contained HTML report of a run folder, and ``steerlab report``."""

from __future__ import annotations

import json
import math
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import typer
from html_run_folder import GENERATIONS, make_run
from typer.testing import CliRunner

from steerlab.cli.reporting import report
from steerlab.errors import DataError
from steerlab.report.html import render_report, write_report
from steerlab.report.html_format import format_bytes, format_seconds, format_value
from steerlab.report.html_svg import inline_svg


class Page(HTMLParser):
    """Every tag with its attributes, the text outside tags, and the text of each table."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: list[str] = []
        self.styles: list[str] = []
        self.tables: list[list[list[tuple[str, str]]]] = []  # rows of (class, text) cells
        self._stack: list[str] = []
        self._cell: list[str] | None = None
        self._cell_class = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._cell_class = [], dict(attrs).get("class") or ""

    def handle_endtag(self, tag: str) -> None:
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((self._cell_class, "".join(self._cell)))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1] == "style":
            self.styles.append(data)
            return
        self.data.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic run, shared by the tests that only read it."""
    return make_run(tmp_path_factory.mktemp("run") / "run")


@pytest.fixture
def fresh_run(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the synthetic run for a test to change (copying is faster than plotting)."""
    return Path(shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("*.html")))


@pytest.fixture(scope="module")
def page_text(run_dir: Path) -> str:
    return render_report(run_dir)


@pytest.fixture(scope="module")
def page(page_text: str) -> Page:
    return Page(page_text)


def section(page_text: str, anchor: str) -> str:
    """The HTML of the ``<section id=anchor>``."""
    start = page_text.index(f'<section id="{anchor}">')
    return page_text[start : page_text.index("</section>", start)]


def test_sections_in_order_with_status_and_time(page_text: str) -> None:
    anchors = re.findall(r'<section id="([^"]+)">', page_text)
    assert anchors == [
        "spec",
        "stage-mood",
        "stage-sweep",
        "stage-judge",
        "stage-export",
        "provenance",
    ]
    assert "2 of 4 stages finished" in page_text
    assert "1 failed" in page_text and "1 pending" in page_text
    assert "wall time 1 min 37 s" in page_text  # 12.34 + 81.2 + 3.0 s: the run has not finished
    sweep = section(page_text, "stage-sweep")
    assert 'class="badge cached"' in sweep
    assert "1 min 21 s" in sweep
    assert "<span>model base</span>" in sweep
    assert '<p class="description">A made-up study &lt;for tests&gt;.</p>' in page_text
    assert 'depends on <a href="#stage-mood">mood</a>' in sweep
    assert "Steering moves the mood; fluency holds up to ±0.1." in sweep
    for anchor in ("stage-mood", "stage-sweep", "stage-judge", "stage-export", "provenance"):
        assert f'href="#{anchor}"' in page_text  # the table of contents


def test_numbers_show_their_confidence_intervals(page_text: str) -> None:
    sweep = section(page_text, "stage-sweep")
    assert "Δλ (tanh fit)" in sweep
    assert '<div class="value">0.41</div><div class="ci">95% CI [0.3, 0.52]</div>' in sweep
    assert '<div class="value">–</div>' in sweep  # a NaN (null) value, without a CI
    assert (
        '<div class="value">0.9<span class="unit">%</span></div>'
        '<div class="ci">95% CI [0.8, 0.97]<span class="unit">%</span></div>'
    ) in sweep


def test_tables_are_escaped_and_numbers_right_aligned(page: Page, page_text: str) -> None:
    mood_table = page.tables[0]
    assert mood_table[0] == [("", "layer"), ("", "cos")] or mood_table[0] == [
        ("num", "layer"),
        ("num", "cos"),
    ]
    assert mood_table[-1] == [("num", "3"), ("num", "0.9123")]
    rates = page.tables[1]
    assert rates[1] == [("num", "-0.1"), ("num", "0.1"), ("", "low")]
    assert rates[2][2] == ("", "–")  # None
    assert rates[3][2] == ("", "<high>")
    assert "&lt;high&gt;" in page_text


def test_generations_side_by_side(page: Page) -> None:
    grid = next(t for t in page.tables if t and t[0] and t[0][0] == ("prompt", "prompt"))
    assert [text for _, text in grid[0]] == ["prompt", "-0.1", "0", "+0.1"]
    assert grid[0][2][0] == "unsteered"  # the coefficient-0 column is highlighted
    assert grid[1] == [
        ("prompt", "Tell me about your day."),
        ("", "It was grey <and> dull."),
        ("unsteered", "It was fine."),
        ("", "Wonderful & bright!"),
    ]
    assert grid[2][1] == ("missing", "–")  # no generation at -0.1 for that prompt
    assert grid[2][2] == ("unsteered", GENERATIONS[3]["text"])


def test_spec_is_escaped_and_shown_whole(page_text: str) -> None:
    spec = section(page_text, "spec")
    assert "<pre>name: synthetic &lt;study&gt; &amp; co\n" in spec
    assert "examples/synthetic.yaml" in spec
    assert "<study>" not in page_text
    assert "<h1>synthetic &lt;study&gt; &amp; co</h1>" in page_text


def test_failed_and_pending_stages(page_text: str) -> None:
    judge = section(page_text, "stage-judge")
    assert 'class="badge failed"' in judge
    assert '<pre class="error">DataError: judge.jsonl:3: &lt;bad&gt; row</pre>' in judge
    export = section(page_text, "stage-export")
    assert 'class="badge pending"' in export
    assert "Not finished" in export


def test_files_are_relative_links(page_text: str, run_dir: Path) -> None:
    mood = section(page_text, "stage-mood")
    links = re.findall(r'href="([^"#][^"]*)"', mood)
    assert links == [links[0]] and links[0].startswith("stages/mood-")
    assert (run_dir / links[0]).is_file()
    assert "vector.safetensors</a> (10 B)</li>" in mood  # the size stage.json gives
    assert "(missing)" in section(page_text, "stage-sweep")  # results.jsonl was never written


def test_provenance(page_text: str) -> None:
    provenance = section(page_text, "provenance")
    for needle in ("c0ffee" * 6 + "1234", "0.test", "Linux x86_64", "5.24.0", "<dd>7</dd>"):
        assert needle in provenance
    assert "<details><summary>Resolved settings" in provenance
    assert "&quot;layers&quot;: [\n        3,\n        4\n" in provenance
    assert '<td class="num">1 min 21 s</td>' in provenance  # wall time per stage


def test_page_is_self_contained(page: Page, page_text: str) -> None:
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object")]
    for tag, attributes in page.tags:
        for name, value in attributes.items():
            value = (value or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "ftp:")), (tag, name, value)
            if name in ("src", "href"):
                assert value.startswith(("#", "data:image/", "stages/")), (tag, name, value)
            assert "url(" not in value or "url(#" in value, (tag, name, value)
    css = "".join(page.styles)
    assert "@import" not in css and "url(" not in css and "@font-face" not in css
    # The only URLs in the page are text written by the user (spec, generations), escaped.
    text = "".join(page.data)
    for scheme in ("http://", "https://"):
        assert page_text.count(scheme) == text.count(scheme)
    assert "https://example.org/paper.pdf" in text and "https://x.test/w" in text


def test_every_plot_inlined_once_with_unique_ids(page_text: str, run_dir: Path) -> None:
    svgs = sorted(run_dir.glob("stages/*/*.svg"))
    assert len(svgs) == 3
    assert page_text.count("<svg ") == 3  # "behaviour again" names a plot already shown
    assert 'the plot <a href="#plot-2">shown above</a>' in page_text
    for title in ("cosine per layer", "behaviour vs coefficient", "fluency"):
        assert f'aria-label="{title}"' in page_text
    assert "<?xml" not in page_text and "<!DOCTYPE svg" not in page_text
    assert "<metadata" not in page_text and "xmlns" not in page_text
    ids = re.findall(r'\bid="([^"]+)"', page_text)
    assert len(ids) == len(set(ids))
    references = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', page_text)
    assert references
    assert {a or b for a, b in references} <= set(ids)


def test_size_bound(page_text: str) -> None:
    assert len(page_text.encode("utf-8")) < 2_000_000


def test_inline_svg_keeps_same_named_ids_apart() -> None:
    one = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="100pt" height="50pt" viewBox="0 0 100 50">'
    )
    first = (
        one
        + '<defs><path id="g1" d="M0 0"/></defs><use href="#g1"/><g clip-path="url(#g1)"/></svg>'
    )
    second = first.replace('d="M0 0"', 'd="M1 1"')
    a, b = inline_svg(first, "p1-", "a"), inline_svg(second, "p2-", "b")
    assert 'id="p1-g1"' in a and 'href="#p1-g1"' in a and "url(#p1-g1)" in a
    assert 'id="p2-g1"' in b and 'href="#p2-g1"' in b
    assert 'style="max-width: 133px"' in a and "width=" not in a.split(">")[0]
    assert 'class="plot"' in a and 'aria-label="a"' in a
    assert inline_svg("not an svg", "p3-", "c") == ""


@pytest.mark.parametrize(
    "value,text",
    [(None, "–"), (math.nan, "–"), (0.41, "0.41"), (3, "3"), (2.0, "2"), (-0.5, "-0.5"),
     (True, "yes"), (math.inf, "inf"), (0.123456, "0.1235"), ("a", "a")],
)  # fmt: skip
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (10, 1234, 5_600_000, 7e9)] == [
        "10 B",
        "1.2 kB",
        "5.6 MB",
        "7.0 GB",
    ]


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (None, 0.42, 59.0, 61.4, 3725.0)] == [
        "–",
        "0.4 s",
        "59.0 s",
        "1 min 01 s",
        "1 h 02 min",
    ]


def test_write_report_is_atomic_and_rebuilt(fresh_run: Path) -> None:
    run_dir = fresh_run
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    assert path.read_text(encoding="utf-8") == render_report(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["report.html", "run.json", "stages"]
    # A broken run.json: an error, and the old report stays whole.
    before = path.read_bytes()
    (run_dir / "run.json").write_text("{", encoding="utf-8")
    with pytest.raises(DataError):
        write_report(run_dir)
    assert path.read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir()) == ["report.html", "run.json", "stages"]


def test_a_stage_marked_finished_without_stage_json_is_pending(fresh_run: Path) -> None:
    run_dir = fresh_run
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    (run_dir / run["stages"][1]["folder"] / "stage.json").unlink()
    page_text = render_report(run_dir)
    sweep = section(page_text, "stage-sweep")
    assert 'class="badge pending"' in sweep
    assert "stage.json is missing: the stage did not finish" in sweep
    assert "1 of 4 stages finished" in page_text


def test_long_tables_scroll_in_their_own_box(fresh_run: Path) -> None:
    def rows(stage: dict[str, Any]) -> None:
        stage["summary"]["tables"][0]["rows"] = [[i, i / 10, "x"] for i in range(40)]

    _edit_sweep(fresh_run, rows)
    sweep = section(render_report(fresh_run), "stage-sweep")
    assert '<div class="table-wrap tall"><table><caption>rates <span class="rows">40 rows' in sweep
    assert sweep.count("<tr>") >= 41


def test_png_plots_are_inlined_and_missing_ones_noted(fresh_run: Path) -> None:
    def plots(stage: dict[str, Any]) -> None:
        stage["summary"]["plots"] = [
            {"title": "as PNG", "path": "fluency.png"},
            {"title": "gone", "path": "deleted.svg"},
        ]

    _edit_sweep(fresh_run, plots)
    sweep = section(render_report(fresh_run), "stage-sweep")
    assert '<img class="plot" alt="as PNG" src="data:image/png;base64,iVBORw0KGgo' in sweep
    assert "gone: plot file deleted.svg is missing." in sweep


def _edit_run(run_dir: Path, edit: Any) -> None:
    path = run_dir / "run.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _edit_sweep(run_dir: Path, edit: Any) -> None:
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    path = run_dir / run["stages"][1]["folder"] / "stage.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


BAD_RUNS = {
    "no folder": (lambda d: d.rename(d.with_name("gone")), "run: no such folder"),
    "no run.json": (lambda d: (d / "run.json").unlink(), "run.json: not found"),
    "not json": (lambda d: (d / "run.json").write_text("{\n  oops"), "run.json:2: not valid JSON"),
    "a list": (lambda d: (d / "run.json").write_text("[]"), "run.json: expected a JSON object"),
    "format": (
        lambda d: _edit_run(d, lambda r: r.update(format="other/9")),
        "run.json: format: expected 'steerlab-run/1', got 'other/9'",
    ),
    "stages": (
        lambda d: _edit_run(d, lambda r: r.update(stages={"a": 1})),
        "run.json: stages: expected a list",
    ),
    "stage name": (
        lambda d: _edit_run(d, lambda r: r["stages"][2].update(name=3)),
        "run.json: stages[2].name: expected a string, got 3",
    ),
    "folder outside": (
        lambda d: _edit_run(d, lambda r: r["stages"][0].update(folder="../elsewhere")),
        "run.json: stages[0].folder: '../elsewhere' is not a path inside the run folder",
    ),
    "stage.json not json": (
        lambda d: _edit_sweep(d, lambda s: s.clear()),
        "stage.json: format: expected 'steerlab-stage/1', got None",
    ),
    "number": (
        lambda d: _edit_sweep(d, lambda s: s["summary"]["numbers"][0].update(value="big")),
        'stage.json: summary.numbers[0].value: expected a number or null, got "big"',
    ),
    "table cell": (
        lambda d: _edit_sweep(d, lambda s: s["summary"]["tables"][0]["rows"][1].append([1])),
        "stage.json: summary.tables[0].rows[1][3]: expected a string, number or null",
    ),
    "plot path": (
        lambda d: _edit_sweep(d, lambda s: s["summary"]["plots"][0].update(path="/etc/passwd")),
        "stage.json: summary.plots[0].path: '/etc/passwd' is not a path inside the run folder",
    ),
    "generations": (
        lambda d: _edit_sweep(d, lambda s: s["summary"].update(generations={"x": 1})),
        "stage.json: summary.generations: expected a list",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_run_folders_are_one_line_errors(fresh_run: Path, case: str) -> None:
    run_dir = fresh_run
    spoil, message = BAD_RUNS[case]
    spoil(run_dir)
    with pytest.raises(DataError) as caught:
        write_report(run_dir)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert not (run_dir / "report.html").exists()


def _cli() -> typer.Typer:
    """``steerlab report`` alone on an app (the real app registers it in steerlab.cli.app)."""
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("report")(report)
    return app


def test_cli_report_rebuilds_and_prints_the_path(fresh_run: Path) -> None:
    run_dir = fresh_run
    result = CliRunner().invoke(_cli(), ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run_dir / "report.html")
    assert (run_dir / "report.html").read_text(encoding="utf-8") == render_report(run_dir)


def test_cli_report_of_a_bad_folder_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "nowhere: no such folder" in lines[0]
    assert "Traceback" not in result.output


def test_a_stage_note_from_the_spec_is_shown(fresh_run: Path) -> None:
    record = json.loads((fresh_run / "run.json").read_text())
    record["stages"][0]["note"] = "Mean difference <of> 48 pairs."
    (fresh_run / "run.json").write_text(json.dumps(record))
    html = render_report(fresh_run)
    assert "Mean difference &lt;of&gt; 48 pairs." in html
