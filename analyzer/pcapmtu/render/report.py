"""The report an on-call engineer attaches to the ticket: report.html, report.md, report.json, plots/.

report.html is one self-contained file (inline CSS, plots embedded as data: URIs, no scripts, fonts or
external images). Every string that came from a capture goes through textsafe before it is written.
Writing never destroys anything: an existing non-empty directory needs `force`, and every file is written
to a temporary name first and renamed into place. Output is deterministic for the same inputs except
for the single "generated at" line.
"""

from __future__ import annotations

import base64
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pandas as pd

from .._version import __version__
from ..errors import UsageError
from ..evidence import stream_filter
from ..results import Finding, Severity, Verdict
from ..textsafe import Quotes, html_text, md_block, md_capture, md_code, md_fence, md_text, printable
from . import rasterize
from .jsondoc import analyze_summary, write_analyze
from .measures import COLUMNS as MEASURES
from .measures import measures

if TYPE_CHECKING:  # annotations only: render needs no diagnose module loaded to import
    from matplotlib.figure import Figure

    from ..diagnose.analysis import Analysis

VECTOR_PLOTS = ("timeline", "mss")


def write_report(
    analysis: Analysis,
    out_dir: str | os.PathLike[str],
    force: bool = False,
    now: datetime | None = None,
    svg: bool = False,
    helpers: int = 0,
) -> list[Path]:
    """Write the report files into `out_dir`; return the paths written. `svg`: vector copies of the light
    plots too (each costs a second rendering of its figure, so only when asked). `helpers`: a forked process
    may draw figures alongside (rasterize.py; the command line's choice, on a machine with a CPU to spare)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise UsageError(f"{out} is not empty; use --force to write into it")
    (out / "plots").mkdir(parents=True, exist_ok=True)
    figures = _figures(analysis)
    titles = [(name, title) for name, _draw, title in figures]
    # the helper (if any) imports matplotlib and draws while this process writes report.json and report.md;
    # report.json before this process loads matplotlib and draws: the memory its encoding takes for a while
    # is free again for the figures, so the report peaks where `analyze --json` does
    with rasterize.start(
        [(draw, svg and name in VECTOR_PLOTS) for name, draw, _ in figures], helpers
    ) as drawing:
        doc = analyze_summary(analysis)
        report_json = _atomic_json(out / "report.json", analysis, doc)
        stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
        markdown = render_markdown(analysis, doc, titles, stamp).encode()
        drawn = drawing.finish()
    written: list[Path] = []
    images: dict[str, bytes] = {}
    for (name, _draw, _title), rendered in zip(figures, drawn, strict=True):
        images[name] = rendered.png
        written.append(_atomic(out / "plots" / f"{name}.png", rendered.png))
        if rendered.svg is not None:  # few elements: a vector copy for slides and print
            written.append(_atomic(out / "plots" / f"{name}.svg", rendered.svg))
    written.append(report_json)
    written.append(_atomic(out / "report.md", markdown))
    written.append(_atomic(out / "report.html", render_html(analysis, doc, titles, images, stamp).encode()))
    return written


def _figures(analysis: Analysis) -> list[tuple[str, Callable[[], Figure], str]]:
    """The report's figures, in order, as (name, how to draw it, title): each draw imports matplotlib (plots)
    when it runs, so that a helper forked before can load it alongside this process."""
    figs = [
        ("timeline", partial(_draw, "timeline", analysis), "Connections over time, coloured by verdict"),
        ("sizes", partial(_draw, "sizes", analysis), "Packet sizes against the MTU lines"),
        ("mss", partial(_draw, "mss_summary", analysis), "Advertised MSS per endpoint vs the path MTU"),
    ]
    for role, conn in suspects(analysis):
        figs.append(
            (
                f"tsg-{role}-{conn}",
                partial(_draw, "time_sequence", analysis, role, conn),
                f"Time-sequence graph of {role} connection #{conn}",
            )
        )
    return figs


def _draw(plot: str, analysis: Analysis, *args) -> Figure:
    from . import plots  # matplotlib: loaded by the process that draws, when it draws

    return getattr(plots, plot)(analysis, *args)


def suspects(analysis: Analysis, limit: int = 4) -> list[tuple[str, int]]:
    """Connections worth a time-sequence graph: the non-healthy ones, worst first."""
    v = _ranked(analysis)
    v = v[v["verdict"] != Verdict.HEALTHY].head(limit)
    return list(zip(v["capture"].tolist(), v["conn"].astype(int).tolist(), strict=True))


def _atomic(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _atomic_json(path: Path, analysis: Analysis, summary: dict) -> Path:
    """report.json, the `analyze --json` document, streamed into place: its size grows with the connections."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        write_analyze(analysis, fh.write, summary)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------------ content
MAX_CONNECTION_ROWS = (
    200  # a ticket attachment must stay readable: the rest is summarised, and in report.json
)
MAX_SUMMARY_ROWS = 40
MAX_FINDING_ROWS = 300


def _ranked(analysis: Analysis) -> pd.DataFrame:
    """The verdicts, worst first (then by capture and connection number), with their rank."""
    v = analysis.verdicts
    return v.assign(rank=v["verdict"].map(Verdict.ranks())).sort_values(
        ["rank", "capture", "conn"], ascending=[False, True, True], kind="stable"
    )


class _Listing(NamedTuple):
    """Which connections the report lists one by one, computed once per rendering."""

    shown: pd.DataFrame  # listed, worst first
    rest: pd.DataFrame  # summarised
    flagged: pd.Series  # per connection (index of the verdicts): a verdict other than healthy, or a finding
    found: dict[tuple[str, int], set[str]]  # (capture, connection) -> the codes of every finding about it


def _listing(analysis: Analysis) -> _Listing:
    """A capture with up to MAX_CONNECTION_ROWS connections has every one listed; a bigger one lists those
    that matter, the ones with a finding, worst first, up to the limit, and the rest are summarised. `found`
    holds every finding's code (the verdict's `codes` are only those that decided it)."""
    v = _ranked(analysis)
    found: dict[tuple[str, int], set[str]] = {}
    for f in analysis.findings_list:
        if f.conn >= 0:
            found.setdefault((f.capture, f.conn), set()).add(f.code)
    with_finding = [key in found for key in zip(v["capture"].tolist(), v["conn"].tolist(), strict=True)]
    flagged = (v["verdict"] != Verdict.HEALTHY) | pd.Series(with_finding, index=v.index, dtype=bool)
    if len(v) <= MAX_CONNECTION_ROWS:
        return _Listing(v, v.iloc[:0], flagged, found)
    shown = v[flagged].head(MAX_CONNECTION_ROWS)
    return _Listing(shown, v.drop(index=shown.index), flagged, found)


def _connection_rows(analysis: Analysis, listing: _Listing | None = None) -> list[dict]:
    """The connections table: every connection of a small capture, else those with a finding, worst first."""
    v = (listing or _listing(analysis)).shown
    rows = []
    for role, group in v.groupby("capture", sort=False):
        f = analysis.context.flows(role).iloc[group["conn"].to_numpy()]  # flows are numbered 0..n-1 in order
        cells = measures(f)
        for i, g in enumerate(group.itertuples(index=False)):
            twin = analysis.context.twin(g.capture, g.conn)
            rows.append(
                {
                    "capture": g.capture,
                    "#": g.conn,
                    "service": g.service,
                    "client": g.client,
                    "server": g.server,
                    **{name: cells[name][i] for name in MEASURES},
                    "other side": f"{twin[0]} connection {twin[1]}" if twin else "",
                    "verdict": g.verdict + (f" ({g.reason})" if g.reason else ""),
                    "codes": g.codes,
                    "_rank": g.rank,
                }
            )
    rows.sort(key=lambda r: (-r["_rank"], r["capture"], r["#"]))
    for r in rows:
        del r["_rank"]
    return rows


def _summary_rows(analysis: Analysis, listing: _Listing | None = None) -> list[dict]:
    """The connections not listed, counted by capture, service and verdict: the biggest groups of each
    verdict, worst verdict first, up to MAX_SUMMARY_ROWS groups."""
    _shown, rest, _flagged, found = listing or _listing(analysis)
    if rest.empty:
        return []
    codes = [
        ",".join(sorted(found.get(key, ())))
        for key in zip(rest["capture"].tolist(), rest["conn"].tolist(), strict=True)
    ]
    groups = (
        rest.assign(reason=rest["reason"].fillna(""), codes=codes)
        .groupby(["capture", "service", "verdict", "reason", "rank"], sort=False, dropna=False)
        .agg(connections=("conn", "size"), codes=("codes", _codes_seen))
        .reset_index()
        .sort_values(["rank", "connections", "capture", "service"], ascending=[False, False, True, True])
        .head(MAX_SUMMARY_ROWS)
    )
    return [
        {
            "capture": g.capture,
            "service": g.service,
            "verdict": g.verdict + (f" ({g.reason})" if g.reason else ""),
            "connections": int(g.connections),
            "codes": g.codes,
        }
        for g in groups.itertuples(index=False)
    ]


def _codes_seen(codes: pd.Series) -> str:
    return ",".join(sorted({c for joined in codes for c in joined.split(",") if c}))


def _listed_findings(analysis: Analysis) -> tuple[list[Finding], str]:
    """(the findings the report lists, in their order, and what it leaves out in words): every one up to
    MAX_FINDING_ROWS, else the loudest that many, the rest counted by code."""
    findings = analysis.findings_list
    if len(findings) <= MAX_FINDING_ROWS:
        return findings, ""
    loud = sorted(range(len(findings)), key=lambda i: -Severity(findings[i].severity).rank)
    keep = set(loud[:MAX_FINDING_ROWS])
    left = Counter(f.code for i, f in enumerate(findings) if i not in keep)
    counts = ", ".join(f"{n} x {code}" for code, n in sorted(left.items()))
    words = (
        f"{len(findings) - len(keep)} of {len(findings)} findings are not listed here, the quietest "
        f"({counts}); report.json has every one."
    )
    return [f for i, f in enumerate(findings) if i in keep], words


def _more_connections(analysis: Analysis, listing: _Listing | None = None) -> str:
    """What the connections table leaves out, in words: how many, where they are summarised and kept."""
    shown, rest, flagged_of, _found = listing or _listing(analysis)
    if rest.empty:
        return ""
    flagged = int(flagged_of[rest.index].sum())
    groups = rest.groupby(["capture", "service", "verdict", "reason"], sort=False, dropna=False).ngroups
    words = (
        f"{len(rest)} of {len(shown) + len(rest)} connections are not listed one by one"
        f" ({flagged} with a finding, {len(rest) - flagged} healthy without one); "
        f"they are counted by service and verdict below"
    )
    if groups > MAX_SUMMARY_ROWS:
        words += f" (the {MAX_SUMMARY_ROWS} biggest of {groups} groups, worst verdict first)"
    return words + ". report.json has every connection, and pcapmtu export writes the full tables."


def _capture_rows(analysis: Analysis) -> list[dict]:
    rows = []
    for role, cap in analysis.captures.items():
        s = cap.summary()
        start, end = cap.time_span
        rows.append(
            {
                "role": role,
                "file": Path(cap.path).name,
                "format": s["format"] + (f" ({s['compression']})" if s["compression"] else ""),
                "link types": ", ".join(s["link_types"]),
                "packets": s["packets"],
                "time span": (
                    f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M:%S} UTC + {end - start:.1f} s"
                    if start
                    else "-"
                ),
                "truncated": s["truncated_packets"],
                "warnings": "; ".join(s["warnings"]) or "-",
                "taken": _where(analysis, role),
                "clock": _clock(analysis, role),
            }
        )
    return rows


def _where(analysis: Analysis, role: str) -> str:
    v = analysis.vantage.get(role)
    return f"{v.where} ({'; '.join(v.reasons[:2])})" if v else "-"


def _clock(analysis: Analysis, role: str) -> str:
    """The far capture's clock against the client-side captures', as measured by pairing."""
    ctx = analysis.context
    if role != ctx.far_role or not len(ctx.pairs) or ctx.pairs["clock_offset_s"].isna().all():
        return "-"
    delay = float(ctx.pairs["one_way_delay_s"].median())
    return f"{ctx.clock_offset(role):+.6f} s (one-way delay {delay * 1e3:.3f} ms)"


def _notes(analysis: Analysis) -> list[str]:
    """Roles corrected, and what raised and lowered the confidence: sentences for the report."""
    out = [f"Roles: {c}" for c in analysis.role_changes]
    factors = analysis.diagnosis.confidence_factors
    if factors:
        out.append(
            "Confidence "
            + f"{analysis.diagnosis.confidence:.0%}: "
            + "; ".join(f"{f['why']} ({f['delta']:+.2f})" for f in factors)
        )
    return out


def _num(value: int | None) -> str:
    """A path-MTU bound for people: "?" when the captures do not pin it (not "None", not empty)."""
    return "?" if value is None else str(int(value))


def _signal_text(s: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in s.items())


# ----------------------------------------------------------------------------------------------- Markdown
PLOTS_WHERE = (
    "The plots are PNG files in the plots/ folder beside this file, and report.html (written with it) shows"
    " them embedded: attached to a ticket without that folder, the pictures below show as their titles only."
)


def render_markdown(analysis: Analysis, doc: dict, titles: list[tuple[str, str]], stamp: str) -> str:
    """report.md: pcapmtu's own words as they are; a string from a capture as it is when it cannot mean
    anything to Markdown, else as a code span; filters in code spans and commands in ```sh blocks, byte for
    byte as the terminal and report.json have them (docs/report-format.md, "report.md")."""
    d = analysis.diagnosis
    names = Quotes(printable(s, 10**6) for s in _capture_strings(analysis, doc))
    filters = [printable(f.wireshark_filter, 400) for f in analysis.findings_list if f.wireshark_filter]

    def text(value, limit=300, table=False):
        return md_text(value, limit, capture=names, code=filters, table=table)

    lines = [
        "# pcapmtu report",
        "",
        f"**Verdict: `{d.verdict}`**"
        + (f" ({d.reason})" if d.reason else "")
        + f" - confidence {d.confidence:.0%}",
        "",
    ]
    if d.path_mtu:
        mss = f", recommended MSS **{d.recommended_mss}**" if d.recommended_mss else ""
        lines += [f"Path MTU **{d.path_mtu}**{mss}.", ""]
    lines += [md_block(text(d.explanation, 6000)), ""]
    if d.fix:
        lines += ["## Fix", "", md_block(text(d.fix.summary, 500)), ""]
        for title, commands in (
            ("Recommended", d.fix.recommended),
            (d.fix.ALTERNATIVES.capitalize(), d.fix.alternatives),
        ):
            lines += [f"**{title}:**", ""] if commands else []
            for cmd in commands:  # a comment and one command: copied whole, the block runs just that
                block = f"# {printable(d.fix.comment(cmd), 400)}\n{printable(cmd['command'], 400)}"
                lines += [*md_fence(block, "sh"), ""]
        lines += [f"- {md_block(text(n, 500))}" for n in d.fix.notes] + [""]
        if d.fix.settings:
            lines += [f"**{text(d.fix.settings_heading, 400)}:**", ""]
            lines += [
                f"- {md_block(text(st['line'], 500))} ({text(st['where'], 400)}; {md_code(st['source'])})"
                for st in d.fix.settings
            ] + [""]
        for snippet in d.fix.snippets:
            lines += [
                md_block(text(snippet["what"], 500)),
                "",
                *md_fence(snippet["text"], snippet["format"]),
                "",
            ]
    listing = _listing(analysis)
    more = _more_connections(analysis, listing)
    lines += [
        "## Connections",
        "",
        *_md_table(_connection_rows(analysis, listing), text),
        "",
        *([text(more, 600), "", *_md_table(_summary_rows(analysis, listing), text), ""] if more else []),
        "## Findings",
        "",
    ]
    findings, left_out = _listed_findings(analysis)
    for f in findings:
        # "connection N", not "#N": a ticket system links "#1" to its issue 1
        where = f.capture + (f" connection {f.conn}" if f.conn >= 0 else "")
        where += f" ({md_code(stream_filter(f.tcp_stream))})" if f.tcp_stream >= 0 else ""
        head = f"- **{f.code}** {f.severity}" + (f", {where}" if where else "")
        lines.append(f"{head}: {text(f.message, 600)}")
        if f.frames:
            lines.append(f"  - frames {' '.join(map(str, f.frames[:12]))}")
        if f.wireshark_filter:
            lines.append(f"  - Wireshark filter: {md_code(printable(f.wireshark_filter, 400))}")
    if not findings:
        lines.append("(none)")
    if left_out:
        lines += ["", text(left_out, 2000)]
    if analysis.wireshark_check is not None:  # analyze --wireshark
        lines += ["", analysis.wireshark_check.markdown().rstrip()]
    lines += ["", "## Path MTU evidence", ""]
    for key, p in doc["path"].items():
        lines.append(
            f"- {key}: value {_num(p['value'])}, bracket [{_num(p['low'])}, {_num(p['high'])}), decided by: {text(p['decided_by'])}"
        )
        lines += [f"  - {md_block(text(_signal_text(s)))}" for s in p["signals"][:20]]
    lines += ["", "## Captures", "", *_md_table(_capture_rows(analysis), text, capture_columns=("file",)), ""]
    lines += [f"- {md_block(text(n, 2000))}" for n in _notes(analysis)]
    lines += ["", "## Plots", "", PLOTS_WHERE, ""]
    for name, title in titles:
        lines += [f"### {title}", "", f"![{title}](plots/{name}.png)", ""]
    lines += [f"Generated at {stamp} by pcapmtu {__version__}.", ""]
    return "\n".join(lines)


def _capture_strings(analysis: Analysis, doc: dict) -> set[str]:
    """Every string a capture supplied that pcapmtu's sentences may quote: the service names (DNS answers,
    TLS SNI), the capture files' names and paths, pcapng interface names."""
    out: set[str] = set()
    for role, cap in analysis.captures.items():
        flows = analysis.context.flows(role)
        out |= set(flows["name"]) | set(flows["sni"]) | {str(cap.path), cap.name}
    out |= {i["name"] for c in doc["captures"] for i in c["interfaces"]}
    return {s for s in out if isinstance(s, str) and s}


def _md_table(rows: list[dict], text, capture_columns: tuple[str, ...] = ()) -> list[str]:
    """A GFM table; cells in `capture_columns` are capture strings whole (the capture file's name)."""
    if not rows:
        return ["(none)"]
    head = list(rows[0])

    def cell(h, value):
        return md_capture(value, 300, table=True) if h in capture_columns else text(value, 300, table=True)

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(h, r[h]) for h in head) + " |" for r in rows]
    return out


# ------------------------------------------------------------------------------------------------- HTML
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1150px;padding:0 1em;color:#1d1d1f}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.verdict{display:inline-block;padding:.35em .8em;border-radius:6px;color:#fff;font-weight:600;font-size:1.2em}
.v-mtu_blackhole{background:#c62828}.v-mtu_blackhole_recovered{background:#ef6c00}.v-not_mtu{background:#6a1b9a}
.v-inconclusive{background:#827717}.v-healthy{background:#2e7d32}
.explain{font-size:1.05em;background:#f6f8fa;border-left:4px solid #888;padding:.8em 1em}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f0f0f0}td.tok{white-space:nowrap;overflow-wrap:normal}pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap}
code{font-family:ui-monospace,Menlo,Consolas,monospace}
.sev-error{color:#c62828;font-weight:600}.sev-warning{color:#ef6c00}.sev-info{color:#555}
figure{margin:1em 0;page-break-inside:avoid}figure img{max-width:100%;height:auto;border:1px solid #eee}
.muted{color:#666;font-size:12px}
@media print{body{max-width:none;margin:0}h2{page-break-after:avoid}}
"""


def render_html(
    analysis: Analysis, doc: dict, titles: list[tuple[str, str]], images: dict[str, bytes], stamp: str
) -> str:
    d = analysis.diagnosis
    e = html_text
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>pcapmtu report: {e(d.verdict)}</title><style>{CSS}</style></head><body>",
        "<h1>pcapmtu report</h1>",
        f'<p><span class="verdict v-{e(d.verdict)}" id="verdict">{e(d.verdict)}'
        + (f" ({e(d.reason)})" if d.reason else "")
        + f"</span> &nbsp;confidence {d.confidence:.0%}"
        + (
            f" &nbsp;|&nbsp; path MTU <b>{d.path_mtu}</b>"
            + (f", recommended MSS <b>{d.recommended_mss}</b>" if d.recommended_mss else "")
            if d.path_mtu
            else ""
        )
        + "</p>",
        f'<p class="explain">{e(d.explanation, 6000)}</p>',
    ]
    if d.fix:
        parts.append(f"<h2>Fix</h2><p><b>{e(d.fix.summary, 500)}</b></p>")

        def block(cmd: dict) -> str:
            return f"<p>{e(d.fix.comment(cmd), 400)}</p><pre><code>{e(cmd['command'], 400)}</code></pre>"

        parts += [block(cmd) for cmd in d.fix.recommended]
        if d.fix.alternatives:  # folded: the recommended fix is what most readers need
            parts.append(
                f"<details><summary>{e(d.fix.ALTERNATIVES.capitalize())} ({len(d.fix.alternatives)})</summary>"
                + "".join(block(cmd) for cmd in d.fix.alternatives)
                + "</details>"
            )
        parts.append("<ul>" + "".join(f"<li>{e(n, 500)}</li>" for n in d.fix.notes) + "</ul>")
        if d.fix.settings:
            parts.append(
                f"<p><b>{e(d.fix.settings_heading, 400)}</b></p><ul>"
                + "".join(
                    f"<li>{e(st['line'], 500)} ({e(st['where'], 400)}; <code>{e(st['source'], 400)}</code>)</li>"
                    for st in d.fix.settings
                )
                + "</ul>"
            )
        for snippet in d.fix.snippets:
            parts.append(
                f"<p>{e(snippet['what'], 500)}</p><pre><code>{e(snippet['text'], 4000)}</code></pre>"
            )
    listing = _listing(analysis)
    parts += ["<h2>Connections</h2>", _html_table(_connection_rows(analysis, listing))]
    if more := _more_connections(analysis, listing):
        parts.append(f'<p class="muted">{html_text(more, 600)}</p>')
        parts.append(_html_table(_summary_rows(analysis, listing)))
    parts.append("<h2>Findings</h2>")
    findings, left_out = _listed_findings(analysis)
    parts.append(
        _html_table(
            [
                {
                    "code": f.code,
                    "severity": f.severity,
                    "capture": f.capture,
                    "#": f.conn if f.conn >= 0 else "",
                    "tcp.stream": stream_filter(f.tcp_stream),
                    "message": f.message,
                    "frames": " ".join(map(str, f.frames[:12])),
                    "Wireshark filter": f.wireshark_filter,
                }
                for f in findings
            ],
            severity_col="severity",
        )
    )
    if left_out:
        parts.append(f'<p class="muted">{html_text(left_out, 2000)}</p>')
    if analysis.wireshark_check is not None:  # analyze --wireshark
        parts.append(analysis.wireshark_check.html())
    parts.append("<h2>Path MTU evidence</h2><ul>")
    for key, p in doc["path"].items():
        signals = "".join(f"<li>{e(_signal_text(s), 300)}</li>" for s in p["signals"][:20])
        parts.append(
            f"<li>{e(key)}: value {_num(p['value'])}, bracket [{_num(p['low'])}, {_num(p['high'])}), "
            f"decided by: {e(p['decided_by'], 300)}<ul>{signals}</ul></li>"
        )
    parts.append("</ul>")
    parts += ["<h2>Captures</h2>", _html_table(_capture_rows(analysis))]
    parts.append("<ul>" + "".join(f"<li>{e(n, 2000)}</li>" for n in _notes(analysis)) + "</ul>")
    parts.append("<h2>Plots</h2>")
    for name, title in titles:
        data = base64.b64encode(images[name]).decode()
        parts.append(
            f'<figure><img alt="{e(title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(title)}</figcaption></figure>"
        )
    parts.append(f'<p class="muted">Generated at {e(stamp)} by pcapmtu {e(__version__)}.</p></body></html>')
    return "\n".join(parts) + "\n"


# Columns of tokens an engineer copies whole (addresses:ports, numbers, codes): never broken inside
TOKEN_COLUMNS = {
    "capture",
    "#",
    "client",
    "server",
    *MEASURES,
    "tcp.stream",
    "other side",
    "verdict",
    "codes",
    "code",
    "severity",
    "role",
    "packets",
    "truncated",
}


def _html_table(rows: list[dict], severity_col: str | None = None) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = list(rows[0])
    out = ["<table><thead><tr>" + "".join(f"<th>{html_text(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        cells = []
        for h in head:
            classes = ([f"sev-{html_text(r[h])}"] if h == severity_col else []) + (
                ["tok"] if h in TOKEN_COLUMNS else []
            )
            cls = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{cls}>{html_text(r[h], 400)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)
