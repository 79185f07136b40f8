"""The terminal summary of a scan: one row per group, worst first, and the count of each verdict."""

from __future__ import annotations

from collections import Counter

from rich.markup import escape
from rich.table import Table

from ..textsafe import printable

VERDICT_STYLE = {
    "mtu_blackhole": "bold red",
    "mtu_blackhole_recovered": "bold yellow",
    "not_mtu": "bold magenta",
    "inconclusive": "yellow",
    "healthy": "green",
    "error": "bold",
}


def summary_table(lines: list[dict], limit: int = 40) -> Table:
    """The first `limit` lines (0: all), already worst first."""
    table = Table(show_edge=False, header_style="bold", title_justify="left")
    for col in ("group", "verdict", "conf.", "path MTU", "MSS", "captures", "top finding / error"):
        table.add_column(col, overflow="fold", no_wrap=col in ("verdict", "conf.", "path MTU", "MSS"))
    shown = lines if limit <= 0 else lines[:limit]
    for line in shown:
        verdict = line.get("verdict") or "error"
        style = VERDICT_STYLE.get(verdict, "bold")
        reason = f" ({line['reason']})" if line.get("reason") else ""
        conf = line.get("confidence")
        if line.get("errors"):
            top = printable(line["errors"][0], 200)
        elif line.get("top_findings"):
            f = line["top_findings"][0]
            top = f"{f['code']} {printable(f['message'], 100)}"
        else:
            top = ""
        table.add_row(
            escape(printable(line.get("name"), 80)),
            f"[{style}]{escape(verdict)}[/{style}]{escape(reason)}",
            f"{conf:.0%}" if conf is not None else "",
            str(line.get("path_mtu") or ""),
            str(line.get("recommended_mss") or ""),
            str(len(line.get("files", []))),
            escape(top),
        )
    return table


def counts_sentence(lines: list[dict]) -> str:
    """`12 groups: 3 mtu_blackhole, 1 error, 8 healthy` (the verdicts in the order of the lines)."""
    counts = Counter(line.get("verdict") or "error" for line in lines)
    parts = ", ".join(f"{n} {v}" for v, n in counts.items())
    return f"{len(lines)} groups" + (f": {parts}" if parts else "")
