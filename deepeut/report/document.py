"""A minimal report document (sections of paragraphs, tables and figures) rendered as Markdown and as one
self-contained HTML file (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence, Union


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Pre:
    """Preformatted text (a table as the stage printed it)."""

    text: str


Block = Union[str, Table, Figure, Pre]


@dataclass
class Section:
    title: str
    blocks: List[Block] = field(default_factory=list)


def markdown_table(table: Table) -> str:
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _md_block(b: Block, base: Path) -> str:
    if isinstance(b, Table):
        return markdown_table(b)
    if isinstance(b, Figure):
        return f"![{b.caption}]({os.path.relpath(b.path, base)})\n\n*{b.caption}*"
    if isinstance(b, Pre):
        return f"```\n{b.text.rstrip()}\n```"
    return b


def to_markdown(title: str, sections: Sequence[Section], base: Path) -> str:
    parts = [f"# {title}"]
    for s in sections:
        parts.append(f"## {s.title}")
        parts += [_md_block(b, base) for b in s.blocks]
    return "\n\n".join(parts) + "\n"


def _html_block(b: Block) -> str:
    e = html.escape
    if isinstance(b, Table):
        head = "".join(f"<th>{e(h)}</th>" for h in b.header)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(b, Figure):
        data = base64.b64encode(Path(b.path).read_bytes()).decode()
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{e(b.caption)}">'
            f"<figcaption>{e(b.caption)}</figcaption></figure>"
        )
    if isinstance(b, Pre):
        return f"<pre>{e(b.text)}</pre>"
    return f"<p>{e(b)}</p>"


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
    "th{background:#eee}img{max-width:100%}pre{background:#f6f6f6;padding:8px;overflow-x:auto}"
    "figcaption{font-style:italic;font-size:90%}"
)


def to_html(title: str, sections: Sequence[Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body += [_html_block(b) for b in s.blocks]
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
