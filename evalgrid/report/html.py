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
figure.plot img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #444; max-width: 560px; }
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
