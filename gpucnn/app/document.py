"""A small document model for reports: a list of blocks, rendered to Markdown or to HTML.

Blocks: ("h1" | "h2" | "h3", text), ("p", text), ("list", items), ("table", header, rows),
("img", file, caption).
Text may use **bold** and `code`. HTML embeds each image (a PNG file beside the report) as a
data URI, so report.html stands alone.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

Block = tuple


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            out.append(block[1])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            out.append(_row(block[1]) + "\n|" + "---|" * len(block[1]))
            out[-1] += "".join("\n" + _row(row) for row in block[2])
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})")
    return "\n\n".join(out) + "\n"


def _row(cells: list[str]) -> str:
    """A Markdown table row; a | in a cell (a folder's name, say) would end the cell there."""
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _inline(text: str) -> str:
    """**bold** and `code` of our own sentences, as HTML."""
    parts = html.escape(text).split("**")
    text = "".join(p if i % 2 == 0 else f"<b>{p}</b>" for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(p if i % 2 == 0 else f"<code>{p}</code>" for i, p in enumerate(parts))


def to_html(blocks: list[Block], out: Path, title: str) -> str:
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{_inline(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in block[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                for row in block[2]
            )
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif kind == "img":
            data = base64.b64encode((out / block[1]).read_bytes()).decode()
            body.append(
                f'<figure><img alt="{html.escape(block[2])}" '
                f'src="data:image/png;base64,{data}"><figcaption>'
                f"{html.escape(block[2])}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.5}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        "img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
