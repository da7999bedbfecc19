"""SVG plots made fit to sit inline in one HTML page, several of them in the same page.

A saved SVG is a document of its own: an XML prolog, a doctype, namespace declarations,
metadata, and element ids that are unique only within that file (matplotlib names glyphs by
their index in the font and clip paths by a hash of their box; other tools count from 1).
Several plots in one page would share ids, which HTML forbids and which makes a reference
resolve to the first plot's element. :func:`inline_svg` drops what a page does not need and
gives every id a per-plot prefix, rewriting the references to it.
"""

from __future__ import annotations

import re

__all__ = ["MATPLOTLIB_SVG_CSS", "inline_svg"]

MATPLOTLIB_SVG_CSS = "svg.plot * { stroke-linejoin: round; stroke-linecap: butt; }"
"""matplotlib's per-file ``<style>`` rule, scoped to plots; the page's stylesheet carries it."""

_PROLOG = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>[]*(\[[^\]]*\])?\s*>", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_METADATA = re.compile(r"<metadata\b.*?</metadata>", re.DOTALL | re.IGNORECASE)
_MATPLOTLIB_STYLE = re.compile(
    r'<style type="text/css">\s*\*\s*\{\s*stroke-linejoin:\s*round;\s*stroke-linecap:\s*butt\s*\}'
    r"\s*</style>"
)
_ROOT = re.compile(r"<svg\b([^>]*)>", re.IGNORECASE)
_NAMESPACE = re.compile(r'\s+xmlns(:\w+)?\s*=\s*"[^"]*"')
_SIZE = re.compile(r'\s+(width|height)\s*=\s*"([^"]*)"')
_ID = re.compile(r'\bid="([^"]+)"')
_URL_REF = re.compile(r"url\(\s*#([^)\s]+)\s*\)")
_HREF_REF = re.compile(r'((?:xlink:)?href=")#([^"]+)(")')
_UNITS_TO_PX = {"px": 1.0, "pt": 4 / 3, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4, "": 1.0}


def _width_px(width: str) -> float | None:
    """An SVG ``width`` attribute in CSS pixels (None for percentages or unreadable ones)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-z]*)\s*", width)
    if not match or match.group(2) not in _UNITS_TO_PX:
        return None
    try:
        return float(match.group(1)) * _UNITS_TO_PX[match.group(2)]
    except ValueError:
        return None


def inline_svg(svg_text: str, prefix: str, label: str) -> str:
    """``svg_text`` rewritten to be one of several plots inline in an HTML page.

    Drops the XML prolog, doctype, comments, ``<metadata>`` and namespace declarations (the
    HTML parser places ``<svg>`` in the SVG namespace itself); prefixes every ``id`` and each
    ``url(#id)`` / ``href="#id"`` reference with ``prefix``; replaces the root's fixed
    width and height by ``class="plot"``, a ``max-width`` of its natural width (it shrinks with
    the page and keeps its aspect ratio through the ``viewBox``), ``role="img"`` and
    ``aria-label``.

    Args:
        svg_text: the SVG file's text.
        prefix: unique in the page, e.g. ``"p3-"``.
        label: the plot's accessible name (already HTML-escaped).

    Returns:
        The ``<svg>...</svg>`` element's text, or "" when the text holds no ``<svg>`` element.
    """
    text = _PROLOG.sub("", svg_text)
    text = _COMMENT.sub("", text)
    text = _METADATA.sub("", text)
    text = _MATPLOTLIB_STYLE.sub("", text)
    text = re.sub(r"<defs>\s*</defs>", "", text)
    root = _ROOT.search(text)
    if root is None:
        return ""
    ids = set(_ID.findall(text))

    def rename(name: str) -> str:
        return prefix + name if name in ids else name

    text = _ID.sub(lambda m: f'id="{rename(m.group(1))}"', text)
    text = _URL_REF.sub(lambda m: f"url(#{rename(m.group(1))})", text)
    text = _HREF_REF.sub(lambda m: f"{m.group(1)}#{rename(m.group(2))}{m.group(3)}", text)
    root = _ROOT.search(text)
    assert root is not None  # renaming ids does not touch the root tag's name
    attributes = _NAMESPACE.sub("", root.group(1))
    sizes = dict(_SIZE.findall(attributes))
    attributes = _SIZE.sub("", attributes)
    classes = " ".join(["plot", *re.findall(r'\sclass="([^"]*)"', attributes)])
    attributes = re.sub(r'\s+class="[^"]*"', "", attributes).strip()
    width = _width_px(sizes.get("width", ""))
    style = f' style="max-width: {width:.0f}px"' if width else ""
    if "viewbox" not in attributes.lower() and width:
        # Without a viewBox the drawing cannot scale: keep its fixed size.
        style = f' width="{sizes["width"]}" height="{sizes.get("height", "")}"'
    opening = f'<svg {attributes} class="{classes}"{style} role="img" aria-label="{label}">'
    return (text[: root.start()] + opening + text[root.end() :]).strip()
