"""Self-contained HTML report: figures embedded as base64 PNG (JPEG for micrograph overlays), tables rendered from the same DataFrames that are
written as CSV next to the report (so the numbers in the HTML are the numbers in the CSVs, rounded as each column
says). A table shows a readable subset of its CSV's columns under readable names and links the full CSV; every
table scrolls inside its card, so the page never gets wider than the window.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sacmap.core.atomic import atomic_write

FLOAT_FORMAT = "{:.4g}"

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9;
     line-height:1.45}
header{background:#18324f;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:1.5em} header p{margin:4px 0 0;opacity:.85}
dl.run{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:10px 0 0;font-size:.88em}
dl.run dt{opacity:.75} dl.run dd{margin:0;overflow-wrap:anywhere}
main{max-width:1180px;margin:0 auto;padding:16px 32px 48px}
section{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:14px 22px;margin:18px 0;overflow:hidden}
h2{font-size:1.2em;margin:4px 0 10px;color:#18324f} h3{font-size:1.0em;margin:14px 0 6px}
.note{color:#5a6472;font-size:.92em} .skipped{background:#fff8e6;border-left:4px solid #e0a800;padding:6px 10px}
.scroll{width:fit-content;max-width:100%;max-height:420px;overflow:auto;border:1px solid #e4e7eb;border-radius:4px}
table{border-collapse:collapse;font-size:.86em}
th,td{border:1px solid #dde2e8;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#eef1f5;position:sticky;top:0} td.t{text-align:left}
table.findings{width:100%;font-size:.92em} table.findings td,table.findings th{white-space:normal;text-align:left;
     vertical-align:top}
table.findings th:nth-child(1){width:17%} table.findings th:nth-child(2){width:31%}
table.findings th:nth-child(3){width:21%} table.findings th:nth-child(4){width:8%}
td.yes{color:#176b2c;font-weight:600} td.no{color:#a4161a;font-weight:600} td.partly{color:#8a5a00;font-weight:600}
.figs{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:6px 0 10px;flex:0 1 500px;max-width:calc(50% - 7px)}
figure.wide{flex-basis:100%;max-width:100%}
figure img{width:100%;height:auto;border:1px solid #e4e7eb}
figcaption{font-size:.86em;color:#3d4654}
code{font-size:.85em;overflow-wrap:anywhere}
"""


def format_value(value) -> str:
    """Format one table cell by default (4 significant digits for floats, empty for NaN)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return FLOAT_FORMAT.format(value)
    return str(value)


def fixed(decimals: int) -> Callable[[object], str]:
    """A cell formatter with ``decimals`` decimals (relative energies: 3; total energies: 4)."""

    def fmt(value) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        try:
            return f"{float(value):.{decimals}f}"
        except (TypeError, ValueError):
            return str(value)

    fmt.decimals = decimals  # type: ignore[attr-defined]
    return fmt


def percent(value) -> str:
    """A share (0–1) as a percentage with one decimal."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{100 * float(value):.1f}"


def count(value) -> str:
    """A whole number; blank when missing or negative (``n_C_between`` is -1 where it does not apply)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    try:
        v = int(round(float(value)))
    except (TypeError, ValueError):
        return str(value)
    return "" if v < 0 else str(v)


def yes_no(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return "yes" if str(value).lower() in ("true", "1", "yes") else "no"


@dataclass
class Column:
    """One shown column: the CSV column ``name``, its header ``label`` (with unit) and its cell formatter."""

    name: str
    label: str
    fmt: Callable[[object], str] = format_value


@dataclass
class Figure:
    path: Path
    caption: str
    wide: bool = False


@dataclass
class Table:
    frame: pd.DataFrame
    csv_path: Path
    caption: str
    max_rows: int = 200
    columns: list[Column] | None = None  # None: every column of the frame, by its own name

    def shown(self) -> list[Column]:
        if self.columns is None:
            return [Column(c, str(c)) for c in self.frame.columns]
        return [c for c in self.columns if c.name in self.frame.columns]


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    skipped: str | None = None  # why the section has no results (shown instead of them)


@dataclass
class Finding:
    """One row of the Findings table: the paper's claim, this run's number, the test behind it, the verdict
    (``yes`` / ``no`` / ``partly`` / ``not tested``) and a plain-words comment."""

    claim: str
    measured: str
    test: str
    verdict: str
    comment: str = ""


def _table_html(table: Table, root: Path) -> str:
    df = table.frame
    cols = table.shown()
    shown = df.head(table.max_rows)
    head = "".join(f"<th>{html.escape(c.label)}</th>" for c in cols)
    rows = []
    for _, row in shown.iterrows():
        cells = []
        for c in cols:
            v = row[c.name]
            v = v.item() if hasattr(v, "item") else v
            cls = ' class="t"' if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{html.escape(c.fmt(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rel = os.path.relpath(table.csv_path, root)
    more = f"{len(df) - table.max_rows} more rows and " if len(df) > table.max_rows else ""
    hidden = len(df.columns) - len(cols)
    extra = f"{more}{hidden} more column(s) " if hidden or more else ""
    names = "|".join(c.name for c in cols)
    return (
        f'<h3>{html.escape(table.caption)}</h3><div class="scroll"><table data-csv="{html.escape(rel)}" '
        f'data-columns="{html.escape(names)}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f'</div><p class="note">{extra}{"in" if extra else "Full table:"} <a href="{html.escape(rel)}">'
        f"<code>{html.escape(rel)}</code></a></p>"
    )


def _mime(path: Path) -> str:
    return "image/jpeg" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "image/png"


def _figure_html(fig: Figure, root: Path) -> str:
    data = base64.b64encode(Path(fig.path).read_bytes()).decode("ascii")
    rel = os.path.relpath(fig.path, root)
    cls = ' class="wide"' if fig.wide else ""
    return (
        f'<figure{cls}><img alt="{html.escape(fig.caption)}" src="data:{_mime(fig.path)};base64,{data}">'
        f"<figcaption>{html.escape(fig.caption)} <code>{html.escape(rel)}</code></figcaption></figure>"
    )


def _findings_html(findings: list[Finding]) -> str:
    rows = []
    for f in findings:
        cls = {"yes": "yes", "no": "no", "partly": "partly"}.get(f.verdict, "")
        rows.append(f"<tr><td>{html.escape(f.claim)}</td><td>{html.escape(f.measured)}</td>"
                    f"<td>{html.escape(f.test)}</td><td class='{cls}'>{html.escape(f.verdict)}</td>"
                    f"<td>{html.escape(f.comment)}</td></tr>")
    return ("<table class='findings'><thead><tr><th>Finding of the paper</th><th>This run</th><th>Test</th>"
            "<th>Reproduced?</th><th>In plain words</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def render(title: str, subtitle: str, summary: list[str], sections: list[Section], root: Path, *,
           header: list[tuple[str, str]] | None = None, findings: list[Finding] | None = None,
           findings_note: str = "") -> str:
    """Return the report as one HTML string; ``root`` is the folder the report lives in (for relative links).
    ``header``: (label, value) pairs of the run header; ``findings``: the Findings table at the top."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p>",
    ]
    if header:
        items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in header)
        parts.append(f"<dl class='run'>{items}</dl>")
    parts.append("</header><main>")
    if findings:
        note = f"<p class='note'>{html.escape(findings_note)}</p>" if findings_note else ""
        parts.append(f"<section class='findings'><h2>Findings</h2>{note}{_findings_html(findings)}</section>")
    if summary:
        items = "".join(f"<li>{html.escape(s)}</li>" for s in summary)
        parts.append(f'<section class="summary"><h2>Summary</h2><ul>{items}</ul></section>')
    for sec in sections:
        body = "".join(f"<p>{html.escape(t)}</p>" for t in sec.text)
        if sec.skipped:
            body += f"<p class='skipped'>Skipped: {html.escape(sec.skipped)}</p>"
        if sec.figures:
            body += "<div class='figs'>" + "".join(_figure_html(f, root) for f in sec.figures) + "</div>"
        body += "".join(_table_html(t, root) for t in sec.tables)
        parts.append(f"<section><h2>{html.escape(sec.title)}</h2>{body}</section>")
    parts.append("</main></body></html>")
    return "".join(parts)


def write_report(path: Path, title: str, subtitle: str, summary: list[str], sections: list[Section], **kw) -> Path:
    """Render and atomically write the self-contained report (keywords as :func:`render`)."""
    path = Path(path)
    return atomic_write(path, render(title, subtitle, summary, sections, path.parent, **kw))
