"""Reports of results: plots (PNG and SVG) drawn from result rows and fits, never from models.

* :mod:`~steerlab.report.plots`: a sweep's behaviour, helpfulness and trade-off plots (and,
  re-exported, every other plot).
* :mod:`~steerlab.report.bars`: an evaluation suite's bar charts.
* :mod:`~steerlab.report.matrix`: a steering matrix's rates.
* :mod:`~steerlab.report.vectors`: steering vectors compared per layer.
* :mod:`~steerlab.report.style`: the shared look and the deterministic file output.
* :mod:`~steerlab.report.html`: a run folder's self-contained HTML report (with html_load,
  html_svg, html_style, html_format).

Report builds only on :mod:`steerlab.stats` (rows and fits) and the foundation modules; the
HTML report reads finished run folders (``run.json``, ``stage.json``), never the runner.
"""
