"""The plan report as one self-contained HTML page (inline CSS, figures as data: URIs, no scripts)."""

from __future__ import annotations

import base64
import html
import re

from .report_blocks import Bullets, Figure, Heading, Para, Table


# ----------------------------------------------------------------------------------------------- html
_CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 15px;
       line-height: 1.45; color: #1d1d1f; background: #ffffff; margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 24px 48px; box-sizing: border-box; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.recommendation { background: #f3f8ee; border-left: 5px solid #4c9a2a; padding: 10px 14px; }
.scroll { max-width: 100%; overflow-x: auto; margin: 8px 0 14px; }
table { border-collapse: collapse; font-size: 12.5px; max-width: 100%; }
th, td { border: 1px solid #d0d0d0; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
caption { caption-side: top; text-align: left; font-style: italic; padding: 2px 0 4px; }
figure { margin: 10px 0 18px; } img { max-width: 100%; height: auto; display: block; }
code { background: #f2f2f2; padding: 0 3px; word-break: break-all; }
"""


def _inline(text: str) -> str:
    s = html.escape(text, quote=False)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
    return s


def to_html(blocks: list, title: str) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>"]
    after_reco = False
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
            after_reco = b.text == "Recommendation"
        elif isinstance(b, Para):
            cls = ' class="recommendation" id="recommendation"' if after_reco else ""
            parts.append(f"<p{cls}>{_inline(b.text)}</p>")
            after_reco = False
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            cap = f"<caption>{_inline(b.caption)}</caption>" if b.caption else ""
            head = "<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in b.headers) + "</tr>"
            body = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            parts.append(f'<div class="scroll"><table>{cap}<thead>{head}</thead><tbody>{body}</tbody></table></div>')
        elif isinstance(b, Figure):
            data = base64.b64encode(b.png).decode("ascii")
            cap = f"<figcaption>{_inline(b.caption)}</figcaption>" if b.caption else ""
            parts.append(f'<figure><img alt="{html.escape(b.alt)}" src="data:image/png;base64,{data}">{cap}</figure>')
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"

