"""report.html: the report in one self-contained file, with a per-item browser.

The markdown of report.md is rendered to HTML (markdown-it, the parser rich uses), every plot is inlined
(its SVG where there is one, else the PNG as a data URI), and the browser's data sits in the page as
JSON. Nothing is fetched: no scripts, fonts or styles from a network, so the file opens from file:// on
an air-gapped machine. The browser renders one page of items at a time (50 by default), so a run of
14,000 MMLU items across several models stays responsive; `tests/reporting/test_html.py` opens such a
page in headless Chromium.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from evalkit.records.io import write_text_atomic

TEMPLATE = Path(__file__).with_name("report.html.j2")
_IMG = re.compile(r'(?:<p>)?<img src="plots/([^"/]+)\.png" alt="([^"]*)"\s*/?>(?:</p>)?')
_DETAILS = re.compile(r"<p>&lt;details&gt;&lt;summary&gt;([\w ]+)&lt;/summary&gt;</p>")
_END_DETAILS = "<p>&lt;/details&gt;</p>"
_SVG_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)


def render_html(markdown_text: str, plot_dir: Path, payload: dict[str, Any], title: str) -> str:
    """The whole page as a string."""
    from jinja2 import Environment, select_autoescape
    from markdown_it import MarkdownIt

    # Raw HTML stays text: report.md carries names from records (an imported table's model names), which
    # must not become markup. Only the collapsible sections the report writes itself are turned back.
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    body = _DETAILS.sub(r"<details><summary>\1</summary>", body).replace(_END_DETAILS, "</details>")
    body = _IMG.sub(lambda m: _inline(plot_dir, m.group(1), m.group(2)), body)
    env = Environment(autoescape=select_autoescape(default=True), keep_trailing_newline=True)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    # Inside <script>, "</script" ends the element and "<!--" changes how it is parsed: no "<" at all
    # (it occurs only inside JSON strings, where \u003c means the same character).
    data = data.replace("<", "\\u003c")
    return template.render(title=title, body=body, data=data)


def write_html(out_dir: Path, markdown_text: str, payload: dict[str, Any], title: str) -> Path:
    return write_text_atomic(out_dir / "report.html", render_html(markdown_text, out_dir / "plots", payload, title))


def _inline(plot_dir: Path, stem: str, alt: str) -> str:
    svg = plot_dir / f"{stem}.svg"
    if svg.is_file():
        text = _SVG_PROLOGUE.sub("", svg.read_text(encoding="utf-8"), count=1)
        return f'<figure class="plot" role="img" aria-label="{_attr(alt)}">{text}</figure>'
    png = plot_dir / f"{stem}.png"
    if png.is_file():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        return f'<figure class="plot"><img src="data:image/png;base64,{data}" alt="{_attr(alt)}"></figure>'
    return f'<p class="missing">plot {_attr(stem)} is missing</p>'


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
