"""The command line: parse, call the library, render, map errors to exit codes. Nothing else.

Exit codes (docs/cli.md): 0 = nothing wrong found, 1 = a problem found, 2 = bad input or usage.
"""

from __future__ import annotations

import json
import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .capture import Capture, read
from .errors import PcapmtuError
from .jsonout import inspect_document
from .textsafe import printable


class Exit(IntEnum):
    OK = 0
    PROBLEM = 1
    BAD_INPUT = 2


app = typer.Typer(
    name="pcapmtu",
    help=(
        "Find MTU/MSS black holes in packet captures of container networks.\n\n"
        "Start with `pcapmtu inspect FILE` to see what a capture holds: its format, its TCP connections "
        "with the service names DNS gave them, the MSS each side advertised, the largest packets that "
        "got through and the retransmissions."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
err = Console(stderr=True, highlight=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pcapmtu {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Offline forensic analysis of pcap/pcapng captures."""


@app.command()
def inspect(
    files: Annotated[list[Path], typer.Argument(help="Capture files (pcap, pcapng; gzip/bz2/xz/zstd ok).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout (docs/json.md).")
    ] = False,
    limit: Annotated[int, typer.Option(help="Connections shown per capture in the terminal (0 = all).")] = 40,
    debug: Annotated[bool, typer.Option(help="Show a traceback on internal errors.")] = False,
) -> None:
    """Show what each capture holds: format, link types, packets, time span and its TCP connections."""
    captures: list[Capture] = []
    failed = False
    for path in files:
        try:
            captures.append(read(path))
        except PcapmtuError as exc:
            err.print(f"pcapmtu: {escape(printable(exc, 400))}")
            failed = True
        except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
            if debug:
                raise
            err.print(
                f"pcapmtu: internal error reading {escape(printable(path))}: {escape(printable(exc))} (--debug for details)"
            )
            failed = True
    if as_json:
        json.dump(inspect_document(captures), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
        for cap in captures:
            _print_capture(out, cap, limit)
    raise typer.Exit(Exit.BAD_INPUT if failed else Exit.OK)


def _print_capture(out: Console, cap: Capture, limit: int) -> None:
    info = cap.summary()
    start, end = cap.time_span
    span = f"{end - start:.3f} s" if start is not None else "empty"
    out.print(f"[bold]{escape(printable(cap.path))}[/bold]")
    out.print(
        f"  {info['format']}{' (' + info['compression'] + ')' if info['compression'] else ''}, "
        f"link types {', '.join(info['link_types']) or '-'}, {info['packets']} packets, {span}, "
        f"{info['tcp_connections']} TCP connections, {info['truncated_packets']} truncated by snaplen"
    )
    for warning in cap.warnings:
        out.print(f"  [yellow]warning:[/yellow] {escape(printable(warning, 300))}")
    flows = cap.flows
    if not len(flows):
        out.print()
        return
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for col in ("#", "client", "server", "name", "MSS c/s", "max payload c>s / s>c", "retrans", "state"):
        table.add_column(col, overflow="fold")
    shown = flows if limit <= 0 else flows.head(limit)
    for row in shown.itertuples(index=False):
        table.add_row(
            str(row.conn),
            escape(_endpoint(row.client_ip, row.client_port)),
            escape(_endpoint(row.server_ip, row.server_port)),
            escape(printable(row.name, 60)),
            f"{row.mss_client or '-'}/{row.mss_server or '-'}",
            f"{row.max_payload_c2s} / {row.max_payload_s2c}",
            str(row.retransmissions),
            f"{row.state} ({row.conn_state})",
        )
    out.print(table)
    if len(shown) < len(flows):
        out.print(f"  … {len(flows) - len(shown)} more (use --limit 0 or --json)")
    out.print()


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def main() -> None:
    """Console-script entry point."""
    app()
