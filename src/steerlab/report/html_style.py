"""The report page's stylesheet: inline CSS only, system fonts, readable on screen and on paper."""

from __future__ import annotations

from steerlab.report.html_svg import MATPLOTLIB_SVG_CSS

__all__ = ["PAGE_CSS"]

PAGE_CSS = (
    """
:root {
  color-scheme: light;
  --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa;
  --accent: #0b5cad; --ok: #1a7f37; --cached: #6639ba; --bad: #cf222e; --wait: #9a6700;
  --sans: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "Noto Sans", "Liberation Sans", "DejaVu Sans", sans-serif;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono",
    "DejaVu Sans Mono", monospace;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff; font: 15px/1.5 var(--sans); }
main { max-width: 1080px; margin: 0 auto; padding: 28px 28px 64px; }
h1 { font-size: 1.75rem; margin: 0 0 4px; line-height: 1.25; }
h2 { font-size: 1.3rem; margin: 0 0 6px; line-height: 1.3; }
h3 { font-size: 1rem; margin: 22px 0 8px; color: var(--muted);
     text-transform: uppercase; letter-spacing: .04em; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre { font-family: var(--mono); font-size: 13px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
      padding: 10px 12px; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere;
      margin: 8px 0; }
pre.error { background: #ffebe9; border-color: #ffcecb; color: #82071e; }
section { border-top: 1px solid var(--line); padding: 22px 0 8px; margin-top: 22px; }
header.page { padding-bottom: 10px; }
.status-line { color: var(--muted); margin: 0; }
.status-line strong { color: var(--ink); }
nav.toc { margin-top: 14px; }
nav.toc ol { margin: 6px 0 0; padding-left: 22px; columns: 2; column-gap: 32px; }
nav.toc li { break-inside: avoid; }
.meta { color: var(--muted); margin: 0 0 10px; }
.meta span + span::before { content: "·"; margin: 0 8px; color: var(--line); }
.badge { display: inline-block; font-size: 12px; font-weight: 600; line-height: 18px;
         padding: 0 8px; border-radius: 9px; border: 1px solid currentColor;
         vertical-align: 3px; margin-left: 8px; text-transform: uppercase;
         letter-spacing: .03em; }
.badge.ran { color: var(--ok); } .badge.cached { color: var(--cached); }
.badge.failed { color: var(--bad); }
.badge.pending, .badge.skipped { color: var(--wait); }
.headline { font-size: 1.05rem; margin: 8px 0 12px; }
.description { margin: 6px 0 8px; font-size: 1.05rem; }
.numbers { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr));
           gap: 10px; margin: 10px 0; }
.number { border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
.number .label { color: var(--muted); font-size: 13px; }
.number .value { font-size: 1.35rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.number .unit { font-size: .8rem; font-weight: 400; color: var(--muted); }
.number .ci { color: var(--muted); font-size: 13px; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; margin: 8px 0 14px; }
.table-wrap.tall { max-height: 28rem; overflow-y: auto; width: fit-content; max-width: 100%;
                   border-bottom: 1px solid var(--line); }
.table-wrap.tall thead th { position: sticky; top: 0; z-index: 1; }
table { border-collapse: collapse; font-size: 14px; }
caption { text-align: left; font-weight: 600; padding: 0 0 6px; }
caption .rows { font-weight: 400; color: var(--muted); font-size: 13px; margin-left: 6px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; vertical-align: top;
         text-align: left; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.generations { width: 100%; table-layout: fixed; }
table.generations td { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 13.5px; }
table.generations th.prompt, table.generations td.prompt { width: 18%; }
table.generations .unsteered { background: #eef6ff; }
table.generations th.unsteered::after { content: " (unsteered)"; font-weight: 400;
                                        color: var(--muted); }
td.missing { color: var(--muted); text-align: center; }
figure { margin: 10px 0 18px; }
figure svg.plot, figure img.plot { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.note { color: var(--muted); font-style: italic; }
ul.files { padding-left: 20px; margin: 6px 0; }
details { margin: 8px 0; }
details > summary { cursor: pointer; color: var(--accent); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 18px; margin: 8px 0;
           align-items: baseline; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; font-family: var(--mono); font-size: 13px; overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: 13px; margin-top: 36px; }
@media (max-width: 700px) {
  main { padding: 16px; }
  nav.toc ol { columns: 1; }
}
@media print {
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  a { color: inherit; }
  nav.toc { display: none; }
  section { break-inside: auto; }
  figure, .number, tr, pre { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  pre { white-space: pre-wrap; }
  .table-wrap.tall { max-height: none; overflow: visible; border-bottom: 0; }
}
"""
    + MATPLOTLIB_SVG_CSS
    + "\n"
)
"""The page's one stylesheet (inlined in a ``<style>`` element)."""
