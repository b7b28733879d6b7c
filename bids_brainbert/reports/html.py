"""Self-contained HTML reports: every figure embedded as a base64 data URI, no external resource.

Names in a report come from the dataset (subject, session, task and run labels, channel names, trial types,
file names) and are hostile until escaped: every piece of text goes into the HTML through :func:`escape`, which
the builders here (:func:`heading`, :func:`paragraph`, :func:`preformatted`, :func:`image`, :func:`table`,
:func:`render`) call for their callers. Code assembling a report passes plain text to them and never formats a
dataset-derived string into markup itself.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #446; } h2 { margin-top: 1.6em; color: #335; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
th { background: #eef; } img { max-width: 100%; display: block; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; } nav a { margin-right: 1em; }
"""


@dataclass
class Section:
    title: str
    body: str                # HTML


def escape(text) -> str:
    """``text`` as HTML text or attribute value (``& < > " '`` escaped): the one way text enters a report."""
    return html.escape(str(text), quote=True)


def heading(text: str, level: int = 3) -> str:
    return f"<h{level}>{escape(text)}</h{level}>"


def preformatted(text: str) -> str:
    return f'<pre style="white-space: pre-wrap">{escape(text)}</pre>'


def paragraph(text: str, css: str = "") -> str:
    return f'<p class="{css}">{escape(text)}</p>' if css else f"<p>{escape(text)}</p>"


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def table(frame: pd.DataFrame, max_rows: int = 200, float_digits: int = 3) -> str:
    shown = frame.head(max_rows)
    out = shown.to_html(index=False, escape=True, na_rep="n/a", float_format=lambda v: f"{v:.{float_digits}f}",
                        border=0)
    if len(frame) > max_rows:
        out += paragraph(f"({len(frame) - max_rows} more rows in the TSV file)", "note")
    return out


def render(title: str, sections: list[Section], subtitle: str = "") -> str:
    """A complete HTML document with a navigation bar and one <section> per entry."""
    nav = " ".join(f'<a href="#s{i}">{escape(s.title)}</a>' for i, s in enumerate(sections))
    parts = [f'<section id="s{i}"><h2>{escape(s.title)}</h2>{s.body}</section>' for i, s in enumerate(sections)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(title)}</h1>{paragraph(subtitle, 'note') if subtitle else ''}<nav>{nav}</nav>"
            + "".join(parts) + "</body></html>\n")
