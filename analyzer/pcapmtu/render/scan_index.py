"""index.html of `scan --out DIR`: one row per group, worst first, each linking its report.

Everything a capture can put here (file names, finding messages) is escaped (textsafe.html_text); links are
the group's own report path, which scan/job.py builds from the group id (slug and hex digits only).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .. import __version__
from ..textsafe import html_text as e

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1300px;padding:0 1em;color:#1d1d1f}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f0f0f0}td.num{text-align:right;white-space:nowrap}code{font-family:ui-monospace,Menlo,Consolas,monospace}
.v{display:inline-block;padding:.1em .5em;border-radius:4px;color:#fff;font-weight:600;white-space:nowrap}
.v-mtu_blackhole{background:#c62828}.v-mtu_blackhole_recovered{background:#ef6c00}.v-not_mtu{background:#6a1b9a}
.v-inconclusive{background:#827717}.v-healthy{background:#2e7d32}.v-error{background:#424242}
.muted{color:#666;font-size:12px}
"""


def write_index(path: Path, lines: list[dict]) -> Path:
    """Write the index of these lines (already worst first) atomically; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_index(lines), encoding="utf-8")
    os.replace(tmp, path)
    return path


def render_index(lines: list[dict]) -> str:
    counts = Counter(line.get("verdict") or "error" for line in lines)
    summary = ", ".join(f"{n} {e(v)}" for v, n in counts.most_common())
    rows = [_row(line) for line in lines]
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "group",
            "verdict",
            "confidence",
            "path MTU",
            "MSS",
            "captures",
            "top finding",
            "time (UTC)",
        )
    )
    return "".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>pcapmtu scan: {len(lines)} groups</title><style>{CSS}</style></head><body>",
            f"<h1>pcapmtu scan</h1><p>{len(lines)} groups: {summary or 'none'}. Worst first; each group "
            "links its report.</p>",
            f"<table><tr>{head}</tr>{''.join(rows)}</table>",
            f'<p class="muted">pcapmtu {e(__version__)}; the same rows as scan.jsonl (docs/scan.md).</p>',
            "</body></html>\n",
        ]
    )


def _row(line: dict) -> str:
    verdict = line.get("verdict") or "error"
    reason = f" ({e(line['reason'])})" if line.get("reason") else ""
    name = e(line.get("name"), 200)
    report = line.get("report")
    group = f'<a href="{e(report, 400)}">{name}</a>' if report else name
    conf = line.get("confidence")
    files = "<br>".join(
        f"<code>{e(f.get('path'), 300)}</code> <span class=muted>{e(f.get('analysed_as') or f.get('role'))}</span>"
        for f in line.get("files", [])
    )
    if line.get("errors"):
        top = "<br>".join(e(x, 400) for x in line["errors"])
    elif line.get("top_findings"):
        f = line["top_findings"][0]
        top = f"<code>{e(f.get('code'))}</code> {e(f.get('message'), 300)}"
    else:
        top = ""
    window = line.get("time_window") or {}
    number = '<td class="num">{}</td>'.format
    cells = [
        f"<td>{group}<br><span class=muted>{e(line.get('group'))}, by {e(line.get('grouped_by'))}</span></td>",
        f'<td><span class="v v-{e(verdict)}">{e(verdict)}</span>{reason}</td>',
        number(f"{conf:.0%}" if conf is not None else ""),
        number(e(line.get("path_mtu") or "")),
        number(e(line.get("recommended_mss") or "")),
        f"<td>{files}</td>",
        f"<td>{top}</td>",
        f"<td>{e(window.get('first') or '')}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"
