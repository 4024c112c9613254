"""Self-contained HTML report: figures embedded as base64 PNG, tables rendered from the same DataFrames that are
written as CSV next to the report (so the numbers in the HTML are the numbers in the CSVs).
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sacmap.core.atomic import atomic_write

FLOAT_FORMAT = "{:.4g}"

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#18324f;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:1.5em} header p{margin:4px 0 0;opacity:.85}
main{max-width:1180px;margin:0 auto;padding:16px 32px 48px}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:14px 22px;margin:18px 0}
h2{font-size:1.2em;margin:4px 0 10px;color:#18324f} h3{font-size:1.0em;margin:14px 0 6px}
.summary li{margin:3px 0} .note{color:#5a6472;font-size:.92em}
table{border-collapse:collapse;font-size:.86em;margin:6px 0 10px}
th,td{border:1px solid #dde2e8;padding:3px 8px;text-align:right} th{background:#eef1f5}
td.t{text-align:left}
figure{display:inline-block;margin:6px 10px 10px 0;vertical-align:top}
figure img{max-width:520px;border:1px solid #e4e7eb}
figcaption{font-size:.86em;color:#5a6472;max-width:520px}
.scroll{max-height:360px;overflow:auto;display:inline-block}
"""


def format_value(value) -> str:
    """Format one table cell the way the report shows it (4 significant digits for floats)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return FLOAT_FORMAT.format(value)
    return str(value)


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Table:
    frame: pd.DataFrame
    csv_path: Path
    caption: str
    max_rows: int = 200


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def _table_html(table: Table, root: Path) -> str:
    df = table.frame
    shown = df.head(table.max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for _, row in shown.iterrows():
        cells = []
        for v in row.tolist():
            cls = ' class="t"' if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{html.escape(format_value(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if len(df) > table.max_rows:
        more = f'<p class="note">{len(df) - table.max_rows} more rows in the CSV.</p>'
    rel = os.path.relpath(table.csv_path, root)
    return (
        f'<h3>{html.escape(table.caption)}</h3><div class="scroll"><table data-csv="{html.escape(rel)}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}"
        f'<p class="note">CSV: <code>{html.escape(rel)}</code></p>'
    )


def _figure_html(fig: Figure, root: Path) -> str:
    data = base64.b64encode(Path(fig.path).read_bytes()).decode("ascii")
    rel = os.path.relpath(fig.path, root)
    return (
        f'<figure><img alt="{html.escape(fig.caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(fig.caption)} <code>{html.escape(rel)}</code></figcaption></figure>"
    )


def render(title: str, subtitle: str, summary: list[str], sections: list[Section], root: Path) -> str:
    """Return the report as one HTML string; ``root`` is the folder the report lives in (for relative links)."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header><main>",
    ]
    if summary:
        items = "".join(f"<li>{html.escape(s)}</li>" for s in summary)
        parts.append(f'<section class="summary"><h2>Summary</h2><ul>{items}</ul></section>')
    for sec in sections:
        body = "".join(f"<p>{html.escape(t)}</p>" for t in sec.text)
        body += "".join(_figure_html(f, root) for f in sec.figures)
        body += "".join(_table_html(t, root) for t in sec.tables)
        parts.append(f"<section><h2>{html.escape(sec.title)}</h2>{body}</section>")
    parts.append("</main></body></html>")
    return "".join(parts)


def write_report(path: Path, title: str, subtitle: str, summary: list[str], sections: list[Section]) -> Path:
    """Render and atomically write the self-contained report."""
    path = Path(path)
    return atomic_write(path, render(title, subtitle, summary, sections, path.parent))
