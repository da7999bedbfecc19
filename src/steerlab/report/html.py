"""The report of an experiment run: one self-contained HTML file built from the run folder.

:func:`write_report` reads ``DIR/run.json`` and each finished stage's ``stage.json`` (the
runner's contract) and writes ``DIR/report.html``: the spec, one section per stage (status,
headline, key numbers with their 95% CIs, tables, plots, generations side by side, text and
files) and the run's provenance. The page needs nothing but itself: the stylesheet is inline
with system fonts, plots are inline SVG, there is no script and no reference to the network,
so it can be e-mailed and opened anywhere. It is built from result files only, never from
models, and can be rebuilt at any time (``steerlab report DIR``), also of a run that is not
finished: unfinished stages are shown as pending or failed, with their error.
"""

from __future__ import annotations

import base64
import json
import re
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from steerlab.provenance import atomic_write, library_version
from steerlab.report.html_format import (
    DASH,
    format_bytes,
    format_seconds,
    format_value,
    is_number,
    is_unsteered,
    seconds_between,
)
from steerlab.report.html_load import RunRecord, StageRecord, load_run
from steerlab.report.html_style import PAGE_CSS
from steerlab.report.html_svg import inline_svg

__all__ = ["REPORT_NAME", "render_report", "write_report"]

REPORT_NAME = "report.html"
"""The report's file name inside the run folder."""

TALL_TABLE_ROWS = 15
"""Tables longer than this scroll in a box of their own on screen."""


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` (atomically) from the run's results; return its path.

    Raises:
        DataError: ``run_dir`` is not a run folder, or its run.json or a stage.json is
            malformed (the one-line message names the file and field).
    """
    run_dir = Path(run_dir)
    page = render_report(run_dir)
    target = run_dir / REPORT_NAME
    with atomic_write(target) as handle:
        handle.write(page)
    return target


def render_report(run_dir: str | Path) -> str:
    """The report page of ``run_dir`` as HTML text (see :func:`write_report`)."""
    run = load_run(Path(run_dir))
    return _Page(run).render()


# -- the page ---------------------------------------------------------------------------------


class _Page:
    """Renders one run's page; remembers anchors and the plots already inlined."""

    def __init__(self, run: RunRecord) -> None:
        self.run = run
        self.data = run.data
        self.anchors: dict[str, str] = {}
        for stage in run.stages:
            slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stage.name).strip("-") or "stage"
            anchor, n = f"stage-{slug}", 2
            while anchor in self.anchors.values():
                anchor, n = f"stage-{slug}-{n}", n + 1
            self.anchors[stage.name] = anchor
        self.plots_seen: dict[Path, str] = {}

    def render(self) -> str:
        name = str(self.data.get("name") or self.run.run_dir.name)
        body = [
            self.header(name),
            self.toc(),
            self.spec(),
            *(self.stage(stage) for stage in self.run.stages),
            self.provenance(),
            f"<footer>Written by steerlab {escape(library_version())} from "
            f"{escape(str(self.run.run_dir))}; rebuild it with "
            f"<code>steerlab report {escape(str(self.run.run_dir))}</code>.</footer>",
        ]
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(name)} · steerlab report</title>\n"
            f"<style>{PAGE_CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(part for part in body if part)
            + "\n</main>\n</body>\n</html>\n"
        )

    # -- top of the page --

    def header(self, name: str) -> str:
        stages = self.run.stages
        done = sum(stage.status in ("ran", "cached") for stage in stages)
        parts = [f"<strong>{done} of {len(stages)} stages finished</strong>"]
        for status in ("failed", "pending", "skipped"):
            count = sum(stage.status == status for stage in stages)
            if count:
                parts.append(f"{count} {status}")
        cached = sum(stage.status == "cached" for stage in stages)
        if cached:
            parts.append(f"{cached} from cache")
        total = seconds_between(self.data.get("started"), self.data.get("finished"))
        if total is None:
            known = [stage.wall_s for stage in stages if stage.wall_s is not None]
            total = sum(known) if known else None
        parts.append(f"wall time {format_seconds(total)}")
        finished = self.data.get("finished")
        parts.append(
            f"finished {escape(str(finished))}" if finished else "<strong>run not finished</strong>"
        )
        description = self.data.get("description")
        about = f'<p class="description">{escape(description)}</p>\n' if description else ""
        return (
            f'<header class="page">\n<h1>{escape(name)}</h1>\n{about}'
            f'<p class="status-line">{" · ".join(parts)}</p>\n</header>'
        )

    def toc(self) -> str:
        items = ['<li><a href="#spec">Spec</a></li>']
        for stage in self.run.stages:
            items.append(
                f'<li><a href="#{self.anchors[stage.name]}">{escape(stage.name)}</a> '
                f'<span class="badge {escape(stage.status)}">{escape(stage.status)}</span></li>'
            )
        items.append('<li><a href="#provenance">Provenance</a></li>')
        return '<nav class="toc" aria-label="Contents"><strong>Contents</strong>\n<ol>\n' + (
            "\n".join(items) + "\n</ol>\n</nav>"
        )

    def spec(self) -> str:
        spec_file = self.data.get("spec_file")
        source = f'<p class="meta">{escape(str(spec_file))}</p>' if spec_file else ""
        text = self.data.get("spec_text")
        body = f"<pre>{escape(text)}</pre>" if text else '<p class="note">No spec recorded.</p>'
        return f'<section id="spec">\n<h2>Spec</h2>\n{source}\n{body}\n</section>'

    # -- one stage --

    def stage(self, stage: StageRecord) -> str:
        anchor = self.anchors[stage.name]
        meta = [f"<span>{escape(stage.kind or 'stage')}</span>"]
        if stage.wall_s is not None:
            meta.append(f"<span>{format_seconds(stage.wall_s)}</span>")
        if stage.depends_on:
            links = ", ".join(self.stage_link(name) for name in stage.depends_on)
            meta.append(f"<span>depends on {links}</span>")
        if stage.models:
            meta.append(
                f"<span>{'models' if len(stage.models) > 1 else 'model'} "
                f"{escape(', '.join(stage.models))}</span>"
            )
        if stage.key:
            meta.append(f"<span>key <code>{escape(stage.key[:12])}</code></span>")
        parts = [
            f'<section id="{anchor}">',
            f'<h2>{escape(stage.name)}<span class="badge {escape(stage.status)}">'
            f"{escape(stage.status)}</span></h2>",
            f'<p class="meta">{"".join(meta)}</p>',
        ]
        if stage.note:
            parts.append(f'<p class="description">{escape(stage.note)}</p>')
        if stage.error:
            parts.append(f'<pre class="error">{escape(stage.error)}</pre>')
        if stage.record is None:
            if not stage.error:
                parts.append('<p class="note">Not finished: no results yet.</p>')
            parts.append("</section>")
            return "\n".join(parts)
        summary = stage.summary
        if summary.get("headline"):
            parts.append(f'<p class="headline">{escape(summary["headline"])}</p>')
        parts.append(self.numbers(summary["numbers"]))
        parts.extend(self.table(table) for table in summary["tables"])
        stage_dir = self.run.run_dir / stage.folder
        parts.extend(self.plot(stage_dir, plot) for plot in summary["plots"])
        parts.append(self.generations(summary["generations"]))
        if summary["text"]:
            parts.append(f"<pre>{escape(chr(10).join(summary['text']))}</pre>")
        parts.append(self.files(stage, summary["files"]))
        settings = stage.record.get("settings")
        if settings:
            parts.append(
                "<details><summary>Settings</summary>"
                f"<pre>{escape(json.dumps(settings, indent=2, ensure_ascii=False))}</pre></details>"
            )
        parts.append("</section>")
        return "\n".join(part for part in parts if part)

    def stage_link(self, name: str) -> str:
        if name in self.anchors:
            return f'<a href="#{self.anchors[name]}">{escape(name)}</a>'
        return escape(name)

    @staticmethod
    def numbers(numbers: list[dict[str, Any]]) -> str:
        if not numbers:
            return ""
        cards = []
        for number in numbers:
            unit = escape(number["unit"])
            if unit:
                space = "" if unit.startswith(("%", "°")) else " "
                unit = f'<span class="unit">{space}{unit}</span>'
            value = format_value(number["value"])
            low, high = number["low"], number["high"]
            ci = ""
            if low is not None or high is not None:
                ci = (
                    f'<div class="ci">95% CI [{format_value(low)}, {format_value(high)}]'
                    f"{unit}</div>"
                )
            cards.append(
                f'<div class="number"><div class="label">{escape(number["label"])}</div>'
                f'<div class="value">{escape(value)}{unit if value != DASH else ""}</div>{ci}</div>'
            )
        return '<div class="numbers">\n' + "\n".join(cards) + "\n</div>"

    @staticmethod
    def table(table: dict[str, Any], right: tuple[int, ...] = ()) -> str:
        """A summary table; numeric columns (and those in ``right``) right-aligned."""
        rows = table["rows"]
        width = max([len(table["columns"]), *(len(row) for row in rows)], default=0)
        numeric = [
            bool(rows) and all(row[i] is None or is_number(row[i]) for row in rows if i < len(row))
            for i in range(width)
        ]
        cls = [' class="num"' if is_num or i in right else "" for i, is_num in enumerate(numeric)]
        tall = len(rows) > TALL_TABLE_ROWS
        count = f' <span class="rows">{len(rows)} rows</span>' if tall else ""
        caption = f"<caption>{escape(table['title'])}{count}</caption>" if table["title"] else ""
        head = "".join(
            f"<th{cls[i]}>{escape(format_value(column))}</th>"
            for i, column in enumerate(table["columns"])
        )
        body = []
        for row in rows:
            cells = [
                f"<td{cls[i]}>{escape(format_value(row[i] if i < len(row) else None))}</td>"
                for i in range(width)
            ]
            body.append("<tr>" + "".join(cells) + "</tr>")
        head_row = f"<thead><tr>{head}</tr></thead>" if head else ""
        # A long table scrolls in its own box on screen (header kept in view), not on paper.
        wrap = "table-wrap tall" if tall else "table-wrap"
        return (
            f'<div class="{wrap}"><table>{caption}{head_row}<tbody>\n'
            + "\n".join(body)
            + "\n</tbody></table></div>"
        )

    def plot(self, stage_dir: Path, plot: dict[str, str]) -> str:
        path = stage_dir / plot["path"]
        title = escape(plot["title"] or Path(plot["path"]).stem)
        key = path.resolve()
        if key in self.plots_seen:  # the same file twice: link, do not inline it again
            return (
                f'<p class="note">{title}: the plot <a href="#{self.plots_seen[key]}">'
                "shown above</a>.</p>"
            )
        figure_id = f"plot-{len(self.plots_seen) + 1}"
        self.plots_seen[key] = figure_id
        try:
            raw = path.read_bytes()
        except OSError:
            return f'<p class="note">{title}: plot file {escape(plot["path"])} is missing.</p>'
        if path.suffix.lower() == ".png":
            encoded = base64.b64encode(raw).decode("ascii")
            image = f'<img class="plot" alt="{title}" src="data:image/png;base64,{encoded}">'
        else:
            image = inline_svg(raw.decode("utf-8", errors="replace"), f"{figure_id}-", title)
            if not image:
                return f'<p class="note">{title}: {escape(plot["path"])} is not an SVG image.</p>'
        return (
            f'<figure id="{figure_id}">{image}\n'
            f"<figcaption>{title} <span>({escape(plot['path'])})</span></figcaption></figure>"
        )

    @staticmethod
    def generations(generations: list[dict[str, str]]) -> str:
        """Rows: prompts; columns: the distinct ``column`` values, both in first-seen order."""
        if not generations:
            return ""
        prompts: dict[str, dict[str, list[str]]] = {}
        columns: dict[str, None] = {}
        for item in generations:
            columns.setdefault(item["column"], None)
            prompts.setdefault(item["prompt"], {}).setdefault(item["column"], []).append(
                item["text"]
            )
        marks = {c: ' class="unsteered"' if is_unsteered(c) else "" for c in columns}
        head = "".join(f"<th{marks[c]}>{escape(c)}</th>" for c in columns)
        rows = []
        for prompt, texts in prompts.items():
            cells = []
            for column in columns:
                if column in texts:
                    joined = "\n\n".join(texts[column])
                    cells.append(f"<td{marks[column]}>{escape(joined)}</td>")
                else:
                    cells.append(f'<td class="missing">{DASH}</td>')
            rows.append(f'<tr><td class="prompt">{escape(prompt)}</td>{"".join(cells)}</tr>')
        return (
            '<h3>Generations</h3>\n<div class="table-wrap">'
            # Many columns scroll sideways rather than squeeze each text to a few words.
            f'<table class="generations" style="min-width: {180 + 170 * len(columns)}px">'
            f'<thead><tr><th class="prompt">prompt</th>{head}</tr></thead><tbody>\n'
            + "\n".join(rows)
            + "\n</tbody></table></div>"
        )

    def files(self, stage: StageRecord, files: list[dict[str, Any]]) -> str:
        if not files:
            return ""
        items = []
        for item in files:
            relative = f"{stage.folder}/{item['path']}" if stage.folder else item["path"]
            label = escape(item["label"] or item["path"])
            exists = (self.run.run_dir / relative).exists()
            link = f'<a href="{escape(quote(relative))}">{escape(item["path"])}</a>'
            size = f" ({format_bytes(item['bytes'])})" if item.get("bytes") is not None else ""
            missing = "" if exists else ' <span class="note">(missing)</span>'
            items.append(f"<li>{label}: {link}{size}{missing}</li>")
        return '<h3>Files</h3>\n<ul class="files">\n' + "\n".join(items) + "\n</ul>"

    # -- bottom of the page --

    def provenance(self) -> str:
        data = self.data
        facts: dict[str, Any] = {
            "spec file": data.get("spec_file"),
            "spec sha256": data.get("spec_sha256"),
            "seed": data.get("seed"),
            "started": data.get("started"),
            "finished": data.get("finished") or "not finished",
        }
        provenance = data.get("provenance") or {}
        facts.update(provenance)
        rows = "\n".join(
            f"<dt>{escape(str(key))}</dt><dd>{escape(format_value(value))}</dd>"
            for key, value in facts.items()
            if not isinstance(value, (dict, list))
        )
        stage_rows = [
            [stage.name, stage.kind, stage.status, format_seconds(stage.wall_s), stage.key[:12]]
            for stage in self.run.stages
        ]
        times = self.table(
            {
                "title": "Wall time per stage",
                "columns": ["stage", "kind", "status", "wall time", "key"],
                "rows": stage_rows,
            },
            right=(3,),
        )
        resolved = data.get("resolved")
        details = ""
        if resolved is not None:
            pretty = json.dumps(resolved, indent=2, ensure_ascii=False, sort_keys=False)
            details = (
                "<details><summary>Resolved settings (the spec with every default filled in)"
                f"</summary>\n<pre>{escape(pretty)}</pre></details>"
            )
        return (
            '<section id="provenance">\n<h2>Provenance</h2>\n'
            f'<dl class="facts">\n{rows}\n</dl>\n{times}\n{details}\n</section>'
        )
