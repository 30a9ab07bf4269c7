"""HTML building blocks: escaping, embedded images, tables and the page around the sections.
Every text from a grid or a result goes through :func:`text`; nothing refers outside the file."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1rem 2rem; color: #222; background: #fff; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; margin-top: 2rem; }
nav a { margin-right: 1rem; }
table.facts { border-collapse: collapse; margin: 0.5rem 0; }
table.facts th, table.facts td { border: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: left;
                                 vertical-align: top; }
table.facts td.count { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #666; font-size: 0.9rem; }
.problem { color: #a40000; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figure.plot img, figure.tradeoff img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #444; max-width: 560px; }
.table-scroll { max-height: 36rem; overflow: auto; margin: 0.4rem 0 1rem 0; border: 1px solid #eee;
                width: fit-content; max-width: 100%; }
table.numbers { border-collapse: collapse; font-size: 0.85rem; font-variant-numeric: tabular-nums; }
table.numbers th, table.numbers td { padding: 0.15rem 0.7rem; border-bottom: 1px solid #eee; text-align: left;
                                     white-space: nowrap; }
table.numbers th { position: sticky; top: 0; background: #fff; border-bottom: 2px solid #ccc; }
table.numbers .num { text-align: right; }
table.numbers tbody tr:nth-child(even) { background: #fafafa; }
table.numbers tr.under-budget td { background: #fff3cd; }
.heatmaps { display: flex; flex-wrap: wrap; gap: 1.5rem 2.5rem; align-items: flex-start; }
table.heatmap { border-collapse: separate; border-spacing: 2px; font-size: 0.85rem;
                font-variant-numeric: tabular-nums; }
table.heatmap th { font-weight: normal; color: #444; padding: 0.1rem 0.4rem; text-align: right; white-space: nowrap; }
table.heatmap thead th { text-align: center; }
table.heatmap th.corner { color: #888; font-size: 0.75rem; }
table.heatmap td { min-width: 3.2rem; padding: 0.25rem 0.5rem; text-align: center; }
table.heatmap td.blank { background: repeating-linear-gradient(45deg, #f4f4f4, #f4f4f4 4px, #e8e8e8 4px, #e8e8e8 8px);
                         color: #666; font-style: italic; font-size: 0.72rem; }
article { border-top: 1px solid #eee; padding: 0.6rem 0; }
article h3 { font-size: 1rem; margin: 0 0 0.3rem 0; font-family: ui-monospace, monospace; }
.factors { margin: 0 0 0.4rem 0; font-size: 0.9rem; }
.factors span { margin-right: 0.8rem; }
table.samples { border-collapse: separate; border-spacing: 3px; }
table.samples th { font-size: 0.75rem; font-weight: normal; color: #666; text-align: right; padding-right: 0.3rem; }
table.samples td { text-align: center; vertical-align: top; font-size: 0.75rem; }
table.samples img { image-rendering: pixelated; display: block; margin: 0 auto; background: #f4f4f4; }
.caption { white-space: nowrap; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.5rem; overflow-x: auto; font-size: 0.8rem; }
pre.error { white-space: pre-wrap; }
#gallery [hidden], .gallery-controls[hidden] { display: none; }
.gallery-controls { display: flex; flex-wrap: wrap; gap: 0.4rem 1rem; align-items: center; font-size: 0.85rem;
                    background: #f7f7f7; padding: 0.4rem 0.6rem; position: sticky; top: 0; z-index: 1; }
.gallery-controls .filters label { margin-right: 0.6rem; }
.gallery-controls .shown-count { color: #666; margin-left: auto; }
.cell-group > h3 { font-size: 1.05rem; margin: 1.2rem 0 0.2rem 0; }
.group-count { color: #666; font-weight: normal; font-size: 0.85rem; }
article.cell h4 { font-size: 1rem; margin: 0 0 0.3rem 0; font-family: ui-monospace, monospace; }
.cell-body { display: flex; flex-wrap: wrap; gap: 0.6rem 1.2rem; align-items: flex-start; }
.cell-side { display: flex; flex-wrap: wrap; gap: 0.6rem; align-items: flex-start; }
figure.curve figcaption { font-size: 0.75rem; }
svg.curve-panel { display: inline-block; vertical-align: top; }
svg.curve-panel text { font-size: 10px; fill: #444; }
svg.curve-panel .tick-x, svg.curve-panel .axis-label { text-anchor: middle; }
svg.curve-panel .tick-y { text-anchor: end; }
svg.curve-panel .frame { fill: none; stroke: #bbb; }
svg.curve-panel .tick { stroke: #999; }
svg.curve-panel .grid { stroke: #eee; }
.legend-key { margin-right: 0.6rem; white-space: nowrap; }
.legend-key i { display: inline-block; width: 12px; height: 3px; vertical-align: middle; margin-right: 3px; }
table.loss-terms { border-collapse: collapse; font-size: 0.75rem; font-variant-numeric: tabular-nums; }
table.loss-terms caption { text-align: left; color: #666; }
table.loss-terms th, table.loss-terms td { border: 1px solid #e4e4e4; padding: 0.1rem 0.4rem; text-align: right; }
table.loss-terms th { font-weight: normal; text-align: left; }
.badge.under-budget { display: inline-block; background: #fff3cd; color: #7a5200; border: 1px solid #e0c060;
                      border-radius: 3px; padding: 0 0.35rem; font-size: 0.8rem; margin: 0.1rem 0 0.3rem 0; }
.best-worst .strip h3 { font-size: 0.95rem; margin: 0.8rem 0 0.3rem 0; }
.picks { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.pick-level { border: 1px solid #e4e4e4; border-radius: 4px; padding: 0.25rem; display: flex; gap: 0.25rem;
              flex-wrap: wrap; align-items: flex-start; max-width: 24rem; }
.pick-level .level-name { width: 100%; font-size: 0.8rem; }
.pick { display: flex; flex-direction: column; width: 8.5rem; font-size: 0.72rem; color: inherit;
        text-decoration: none; padding: 0.2rem; border-radius: 3px; background: #fafafa; }
a.pick:hover { background: #eef4fb; }
.pick .thumbs img { image-rendering: pixelated; margin-right: 2px; background: #f4f4f4; }
.pick-kind { font-weight: bold; } .pick-value { font-variant-numeric: tabular-nums; }
.pick-factors { color: #666; overflow-wrap: anywhere; }
.pick .badge.under-budget { font-size: 0.68rem; }
"""


def text(value: object) -> str:
    """Any value as escaped HTML text (quotes too: safe inside attributes)."""
    return html.escape(str(value), quote=True)


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def image(uri: str, alt: str, width: int | None = None, height: int | None = None) -> str:
    """An <img>; ``uri`` must be a data: URI (the report never refers outside itself)."""
    if not uri.startswith("data:"):
        raise ValueError("the report embeds every image as a data: URI")
    size = f' width="{width}" height="{height}"' if width and height else ""
    return f'<img src="{uri}" alt="{text(alt)}"{size}>'


def facts_table(rows: Iterable[tuple[str, str]], css_class: str = "facts") -> str:
    """A two-column table of (header text, cell HTML) rows; the header is escaped here."""
    body = "".join(f"<tr><th>{text(header)}</th>{cell}</tr>" for header, cell in rows)
    return f'<table class="{css_class}">{body}</table>'


def factor_spans(labels: Sequence[tuple[str, object]]) -> str:
    spans = "".join(f'<span data-factor="{text(name)}">{text(name)} = <b>{text(value)}</b></span>'
                    for name, value in labels)
    return f'<p class="factors">{spans}</p>'


def page(title: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: ``sections`` are (anchor, heading, HTML body); empty bodies are left out."""
    shown = [(anchor, heading, body) for anchor, heading, body in sections if body]
    nav = "".join(f'<a href="#{anchor}">{text(heading)}</a>' for anchor, heading, _ in shown)
    parts = "".join(f'<section id="{anchor}"><h2>{text(heading)}</h2>{body}</section>'
                    for anchor, heading, body in shown)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{text(title)}</title><link rel="icon" href="data:,"><style>{STYLE}</style></head>'
            f'<body><h1>{text(title)}</h1><nav>{nav}</nav>{parts}</body></html>\n')
