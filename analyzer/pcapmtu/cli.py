"""The command line: parse, call the library, render, map errors to exit codes. Nothing else.

Exit codes (docs/cli.md): 0 healthy, 1 an MTU problem, 3 another problem or inconclusive, 2 bad input or
usage, 4 an internal error; `_errors` is the one boundary that decides them.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import PcapmtuError, UsageError
from .evidence import endpoint, stream_filter
from .ingest.budget import BYTES_PER_LEAN_PACKET, BYTES_PER_PACKET, parse_size
from .ingest.memory import pause_collector_for_start_up, start_up_done
from .results import Severity, Verdict
from .textsafe import printable

if TYPE_CHECKING:
    from .diagnose.analysis import Analysis
    from .ingest.capture import Capture

# The library modules (pandas, numpy, matplotlib, dpkt) are imported inside the commands that use them:
# `--help`, `rules` and `explain` start instantly, and `inspect` never loads the analysis and plots.


class Exit(IntEnum):
    """Exit codes, a contract (docs/cli.md): scripts and CI branch on them."""

    OK = 0
    MTU_PROBLEM = 1  # analyze: mtu_blackhole or mtu_blackhole_recovered
    BAD_INPUT = 2  # a capture that cannot be read, a wrong option
    OTHER_PROBLEM = 3  # analyze: not_mtu or inconclusive - something is wrong, and it is not the MTU
    INTERNAL = 4  # a bug in pcapmtu (one line on stderr; --debug shows the traceback)
    INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it; `capture` says 2 and keeps what it took


class Platform(StrEnum):
    """`analyze --platform`: the language the fix speaks (pcapmtu.diagnose.platforms)."""

    AUTO = "auto"
    DOCKER = "docker"
    KUBERNETES = "kubernetes"


VERDICT_EXIT = {
    Verdict.HEALTHY: Exit.OK,
    Verdict.MTU_BLACKHOLE: Exit.MTU_PROBLEM,
    Verdict.MTU_BLACKHOLE_RECOVERED: Exit.MTU_PROBLEM,
    Verdict.NOT_MTU: Exit.OTHER_PROBLEM,
    Verdict.INCONCLUSIVE: Exit.OTHER_PROBLEM,
}


@contextmanager
def _errors(debug: bool, what: str = ""):
    """The one error boundary: bad input is exit 2 with its one line, anything else a bug: exit 4."""
    try:
        yield
    except PcapmtuError as exc:
        err.print(f"pcapmtu: {escape(printable(exc, 400))}")
        raise typer.Exit(Exit.BAD_INPUT) from None
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        if debug:
            raise
        where = f" {what}" if what else ""
        err.print(f"pcapmtu: internal error{where}: {escape(printable(exc, 300))} (--debug for details)")
        raise typer.Exit(Exit.INTERNAL) from None


# What `analyze --out DIR` writes (report.write_report): these names are pcapmtu's in any directory.
REPORT_FILES = ("report.html", "report.md", "report.json")
REPORT_PLOTS = ("plots/timeline.*", "plots/sizes.*", "plots/mss.*", "plots/tsg-*")


QUIET_HELP = "Print nothing but errors; the exit code says how it went."
JSON_QUIET_HELP = QUIET_HELP + " --json still prints its document."
DEBUG_HELP = "Show a traceback on internal errors."
FORCE_HELP = "Replace existing files of the names pcapmtu writes; other files are never touched."
MAX_PACKETS_HELP = (
    "Stop with exit code 2 when {scope} holds more than N packets (0 = no limit). Default: as many as "
    "--max-memory holds at {cost} bytes a packet."
)
MAX_MEMORY_HELP = (
    "Stop with exit code 2 when the tables of {scope} would take more than SIZE of memory (bytes, or "
    "with K, M, G, T: 8G; 0 = no limit). Default: 3/4 of the memory available when it starts."
)
EACH = "a capture"
TOTAL = "the captures together"


def _max_packets(scope: str, cost: int):
    return typer.Option(
        "--max-packets", metavar="N", help=MAX_PACKETS_HELP.format(scope=scope, cost=cost), show_default=False
    )


def _max_memory(scope: str):
    return typer.Option("--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP.format(scope=scope))


def _budget(max_packets: int | None, max_memory: str | None) -> tuple[int | None, int | None]:
    """The read budget's options, checked before any capture is read (one line and exit 2 when wrong)."""
    if max_packets is not None and max_packets < 0:
        raise UsageError(f"--max-packets {max_packets}: a number of packets, 0 for no limit")
    try:
        return max_packets, None if max_memory is None else parse_size(max_memory)
    except UsageError as exc:
        raise UsageError(f"--max-memory: {exc}") from None


def _claim(out: Path, option: str, files: list[Path], force: bool, patterns: tuple[str, ...] = ()) -> None:
    """The one rule for a directory pcapmtu writes into (`analyze --out`, `export --to`), docs/cli.md: a new
    directory is created, an existing one may hold anything, and a file pcapmtu would replace needs --force.
    Checked before any work, so a refusal has written nothing. `files` are exact names inside `out`,
    `patterns` globs of names that are pcapmtu's."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} {out}: exists and is not a directory")
    if force or not out.exists():
        return
    taken = [out / f for f in files if (out / f).exists() or (out / f).is_symlink()]
    taken += [p for pattern in patterns for p in sorted(out.glob(pattern))]
    if taken:
        more = f" (and {len(taken) - 1} more pcapmtu would replace)" if len(taken) > 1 else ""
        raise UsageError(f"{taken[0]} exists{more}; add --force to replace, or choose another {option}")


class _Argument(typer.core.TyperArgument):
    """An argument is its name: `CAPTURE...` in the usage line, the error and docs/cli.md; no `<list[Path]>`
    type beside it in --help (typer shows the Python type, and braces around a required one)."""

    def display_type_rich(self, ctx) -> None:
        return None

    def get_usage_pieces(self, ctx) -> list[str]:
        name = self.metavar or self.name.upper()
        return [(name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")]


class _CleanHelp:
    """--help without typer's `<bool>` beside it, arguments as `_Argument` (a test reads every command's help)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is typer.core.TyperArgument:
                param.__class__ = _Argument
                if hasattr(param, "type"):  # typer 0.29 has none, and prints none
                    param.type = _nameless(param.type)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""  # a flag takes nothing
        return option


def _nameless(kind):
    """A copy of an argument's click type that names no type (typer 0.26-0.28 print `<path>` beside an
    argument in --help from `get_metavar`, or the type's name when it gives none); conversion is unchanged."""
    quiet = copy.copy(kind)
    quiet.__class__ = type(
        type(kind).__name__, (type(kind),), {"get_metavar": lambda self, param, ctx=None: ""}
    )
    return quiet


class Command(_CleanHelp, typer.core.TyperCommand):
    pass


class Group(_CleanHelp, typer.core.TyperGroup):
    pass


app = typer.Typer(
    cls=Group,
    name="pcapmtu",
    help=(
        "Find MTU/MSS black holes in packet captures of container networks.\n\n"
        "Start with `pcapmtu inspect CAPTURE` to see what a capture holds: its format, its TCP connections "
        "with the service names DNS gave them, the MSS each side advertised, the largest packets that "
        "got through and the retransmissions."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # one line per error, never wrapped


def _stop_writing() -> None:
    """The reader of standard output went away (`| head`): what is left goes nowhere, and the exit code
    still says what was found (rich's default exits 1, which here means an MTU problem)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class Out(Console):
    """Standard output for people: a closed pipe ends the output, not the command."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _stop_writing()


def _write(text: str) -> None:
    """A document on standard output (--json), with the same closed-pipe rule."""
    _write_with(lambda write: write(text))


def _write_analysis(analysis) -> None:
    """The analyze document on standard output, written in pieces as it is encoded (jsondoc.write_analyze)."""
    from .render.jsondoc import write_analyze

    _write_with(lambda write: write_analyze(analysis, write))


def _write_with(emit) -> None:
    """`emit(write)` writes to standard output; a reader that closed the pipe ends the writing quietly."""
    try:
        emit(sys.stdout.write)
        sys.stdout.flush()
    except BrokenPipeError:
        _stop_writing()


def _version(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:  # not while the shell asks for completions
        from .ingest.native import describe

        typer.echo(f"pcapmtu {__version__} ({describe()})")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Offline forensic analysis of pcap/pcapng captures."""


@app.command(cls=Command)
def inspect(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="CAPTURE", help="Capture files (pcap, pcapng; gzip/bz2/xz/zstd ok)."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="Print one JSON document on stdout (docs/json.md).")
    ] = False,
    limit: Annotated[
        int, typer.Option(metavar="N", help="Connections shown per capture in the terminal (0 = all).")
    ] = 40,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar="", help=JSON_QUIET_HELP)] = False,
    max_packets: Annotated[int | None, _max_packets(EACH, BYTES_PER_LEAN_PACKET)] = None,
    max_memory: Annotated[str | None, _max_memory(EACH)] = None,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help=DEBUG_HELP)] = False,
) -> None:
    """Show what each capture holds: format, link types, packets, time span and its TCP connections."""
    from .ingest.capture import read
    from .render.jsondoc import inspect_json

    start_up_done()
    with _errors(debug):
        max_packets, max_memory = _budget(max_packets, max_memory)
    captures: list[Capture] = []
    failed = Exit.OK
    for path in files:
        try:  # every file is tried; the exit code is the worst outcome
            with _errors(debug, f"reading {printable(path)}"), _progress(quiet or as_json) as bar:
                tick = lambda done, total, name=path.name: bar(name, done, total)  # noqa: E731
                captures.append(
                    read(
                        path,
                        keep_packets=False,
                        progress=tick,
                        max_packets=max_packets,
                        max_memory=max_memory,
                    )
                )
        except typer.Exit as exc:
            failed = max(failed, Exit(exc.exit_code))
    if as_json:
        _write(inspect_json(captures) + "\n")
    elif not quiet:
        out = Out(highlight=False, width=None if sys.stdout.isatty() else 160)
        for cap in captures:
            _print_capture(out, cap, limit)
    raise typer.Exit(failed)


@app.command(cls=Command)
def analyze(
    captures: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="CAPTURE",
            help="HOST CONTAINER [MORE CONTAINERS...]: the host's uplink capture first, then the container's. "
            "A single capture is placed by where it was taken (like --capture).",
        ),
    ] = None,
    host: Annotated[
        Path | None, typer.Option("--host", metavar="FILE", help="Capture taken on the docker host's uplink.")
    ] = None,
    container: Annotated[
        list[Path] | None,
        typer.Option("--container", metavar="FILE", help="Capture taken inside a container (repeatable)."),
    ] = None,
    server: Annotated[
        Path | None,
        typer.Option("--server", metavar="FILE", help="Capture taken on the server (its own tcpdump)."),
    ] = None,
    capture: Annotated[
        list[Path] | None,
        typer.Option(
            "--capture",
            metavar="FILE",
            help="A capture of unknown role, placed by where it was taken: client, docker host or server (repeatable).",
        ),
    ] = None,
    host_mtu: Annotated[
        int | None,
        typer.Option(metavar="BYTES", help="Known MTU of the host's uplink (sharpens the verdict)."),
    ] = None,
    container_mtu: Annotated[
        int | None, typer.Option(metavar="BYTES", help="Known MTU of the container's interface.")
    ] = None,
    platform: Annotated[
        Platform,
        typer.Option(
            metavar="NAME",
            case_sensitive=False,
            help="The fix's language: docker (daemon.json, network options), kubernetes (the CNI's MTU "
            "setting, the clamp as a DaemonSet rule) or auto: from the captures (docs/fixes.md).",
        ),
    ] = Platform.AUTO,
    before: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="With --after: did the fix take? PATH is a folder of captures taken before the change "
            "(host/node, container/pod, server.pcap) or a report.json; exit 0 it took, 1 it did not, 3 cannot "
            "tell (docs/verification.md).",
        ),
    ] = None,
    after: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="With --before: the captures (or report.json) after the change."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="Print the whole report as one JSON document.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Write report.html, report.md, report.json and plots/ here (created if missing; "
            "other files in it are left alone).",
        ),
    ] = None,
    svg: Annotated[
        bool,
        typer.Option(
            "--svg",
            metavar="",
            help="With --out: SVG copies of the timeline and MSS plots too, for slides and print.",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", metavar="", help=FORCE_HELP)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar="", help=JSON_QUIET_HELP)] = False,
    wireshark: Annotated[
        bool,
        typer.Option(
            "--wireshark",
            metavar="",
            help="Ask Wireshark (tshark, through pyshark: pip install 'pcapmtu[deep]') about every evidence "
            "frame and show where it disagrees with pcapmtu; in the report and report.json too.",
        ),
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            metavar="N",
            help="Connections and findings shown in the terminal, the worst first (0 = all); "
            "--json and the report hold every one.",
        ),
    ] = 40,
    max_packets: Annotated[int | None, _max_packets(TOTAL, BYTES_PER_PACKET)] = None,
    max_memory: Annotated[str | None, _max_memory(TOTAL)] = None,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help=DEBUG_HELP)] = False,
) -> None:
    """Diagnose MTU/MSS black holes: verdict, evidence (frames, Wireshark filters) and the computed fix.

    Exit code 0: healthy; 1: an MTU problem; 3: another problem or inconclusive; 2: bad input; 4: a bug.
    """
    from .diagnose.analysis import analyze as run_analysis

    start_up_done()
    if before is not None or after is not None:
        others = captures or host or container or server or capture or out or host_mtu or container_mtu
        _verify(before, after, others or wireshark or svg, platform, as_json, quiet, debug)
    positional = list(captures or [])
    hosts = [host] if host else []
    containers = list(container or [])
    unplaced = list(capture or [])
    # positional: HOST CONTAINER [MORE...]; a lone positional capture is placed by its vantage point
    if len(positional) == 1 and not hosts and not containers:
        unplaced, positional = positional + unplaced, []
    if len(positional) > 1 and not hosts:
        hosts, positional = positional[:1], positional[1:]
    containers = positional + containers
    with _errors(debug):
        if not hosts and not containers and not server and not unplaced:
            raise UsageError(
                "give the host capture and the container capture (pcapmtu analyze HOST CONTAINER)"
            )
        if svg and out is None:
            raise UsageError("--svg adds plots to the report: give --out DIR too")
        if out is not None:
            _claim(out, "--out", [Path(f) for f in REPORT_FILES], force, REPORT_PLOTS)
        max_packets, max_memory = _budget(max_packets, max_memory)
    every = [*hosts, *containers, *([server] if server else []), *unplaced]
    host_mtu, container_mtu, clamp_rules, recorded_platform = _recorded_facts(
        every, host_mtu, container_mtu, quiet
    )
    with _errors(debug), _progress(quiet or as_json) as bar:
        result = run_analysis(
            hosts[0] if hosts else None,
            containers[0] if containers else None,
            *containers[1:],
            server=server,
            captures=unplaced,
            host_mtu=host_mtu,
            container_mtu=container_mtu,
            platform=platform.value,
            clamp_rules=clamp_rules,
            recorded_platform=recorded_platform,
            progress=bar,
            max_packets=max_packets,
            max_memory=max_memory,
        )
        if wireshark:
            bar("asking Wireshark about the evidence", 0, 0)
            result.wireshark()  # kept on the result: the report and report.json show it
        written = []
        if out is not None:
            from .render.report import write_report  # matplotlib only when a report is asked for

            bar("writing the report", 0, 0)
            written = write_report(
                result, out, force=True, svg=svg, helpers=_figure_helpers()
            )  # _claim ruled
    with _errors(debug):
        if as_json:
            _write_analysis(result)
        elif not quiet:
            _print_analysis(Out(highlight=False, width=None if sys.stdout.isatty() else 160), result, limit)
    if written and not quiet:
        report_out = err if as_json else Out(highlight=False, soft_wrap=True)
        report_out.print(f"report: {escape(str(out / 'report.html'))} (and report.md, report.json, plots/)")
    raise typer.Exit(VERDICT_EXIT[result.verdict])


# the fix took: 0; did not take: 1 (the MTU problem is still there); cannot tell: 3
VERIFICATION_EXIT = {"took": Exit.OK, "did_not_take": Exit.MTU_PROBLEM, "cannot_tell": Exit.OTHER_PROBLEM}


def _verify(before, after, others, platform, as_json: bool, quiet: bool, debug: bool) -> NoReturn:
    """`analyze --before --after`: compare the two sides and exit with the outcome's code."""
    from .render import verification
    from .render.jsondoc import dump

    with _errors(debug):
        if before is None or after is None:
            raise UsageError("--before and --after go together: give both")
        if others:
            raise UsageError(
                "--before/--after compare two folders or reports: give no other capture, --out, --svg, "
                "--wireshark, --host-mtu or --container-mtu"
            )
        was, was_from = verification.load(before, platform.value)
        now, now_from = verification.load(after, platform.value)
        result = verification.compare(was, now, was_from, now_from)
        if as_json:
            _write_with(lambda write: dump(result.to_json(), write))
        elif not quiet:
            out = Out(highlight=False, soft_wrap=True)
            for line in verification.lines(result):
                out.print(escape(printable(line, 600)))
    raise typer.Exit(VERIFICATION_EXIT[result.outcome])


def _print_k8s(
    pod: str, namespace: str, container: str | None, image: str, runtime: str, debug: bool
) -> NoReturn:
    """`capture --print-k8s POD`: the recipe for a pod's two captures, printed (capture/kubernetes.py)."""
    from .capture import kubernetes

    with _errors(debug):
        steps = kubernetes.commands(pod, namespace, image=image, container=container, runtime=runtime)
        _write(kubernetes.render(steps) + "\n")
    raise typer.Exit(Exit.OK)


def _recorded_facts(
    captures: list[Path], host_mtu: int | None, container_mtu: int | None, quiet: bool
) -> tuple[int | None, int | None, tuple[str, ...], str | None]:
    """The MTUs, clamp rules and platform `pcapmtu capture` recorded beside these captures
    (pcapmtu-capture.json); MTUs given on the command line win. Said on stderr, so that the reader knows where
    the numbers came from."""
    from .capture.metadata import beside

    recorded, warning = beside(captures)
    if warning and not quiet:
        err.print(f"pcapmtu: warning: {escape(printable(warning, 400))}")
    if recorded is None:
        return host_mtu, container_mtu, (), None
    used = []
    if host_mtu is None and recorded.host_mtu:
        host_mtu = recorded.host_mtu
        used.append(f"host uplink {host_mtu}")
    if container_mtu is None and recorded.container_mtu:
        container_mtu = recorded.container_mtu
        used.append(f"container {container_mtu}")
    if not quiet and (used or recorded.clamp_rules):
        mtus = f"MTUs {', '.join(used)}" if used else "no MTUs (given on the command line)"
        clamps = (
            f"{len(recorded.clamp_rules)} MSS clamp rule(s) on the host"
            if recorded.clamp_rules
            else "no MSS clamp rule on the host"
        )
        err.print(f"pcapmtu: from the capture metadata ({escape(str(recorded.path))}): {mtus}; {clamps}")
    return host_mtu, container_mtu, recorded.clamp_rules, recorded.platform


def _figure_helpers() -> int:
    """One forked process drawing the report's figures alongside this one, when a second CPU is there for it
    (render/rasterize.py): the command line's own process, unlike a notebook's, holds nothing a fork would
    copy badly."""
    from .render.rasterize import usable_cpus

    return 1 if usable_cpus() >= 2 else 0


@contextmanager
def _bars(silent: bool, columns: Callable[[], tuple], describe: Callable[[str, int], str]):
    """Rich progress bars, one per label, fed `update(label, done, total)` (total 0: unknown), on a terminal
    only; nothing when piped or quiet. `columns()` imports and builds the bar's columns only when shown."""
    if silent or not sys.stderr.isatty():
        yield lambda *_args: None
        return
    from rich.progress import Progress

    with Progress(*columns(), console=err, transient=True) as progress:
        tasks: dict[str, int] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(describe(label, total), total=total or None)
            progress.update(tasks[label], completed=done, total=total or None)

        yield update


def _progress(silent: bool):
    """A progress bar per capture read (bytes)."""

    def columns() -> tuple:
        from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn

        return (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())

    return _bars(silent, columns, lambda label, total: f"reading {label}" if total else label)


VERDICT_STYLE = {
    Verdict.MTU_BLACKHOLE: "bold red",
    Verdict.MTU_BLACKHOLE_RECOVERED: "bold yellow",
    Verdict.NOT_MTU: "bold magenta",
    Verdict.INCONCLUSIVE: "bold yellow",
    Verdict.HEALTHY: "bold green",
}


def _print_analysis(out: Console, a: Analysis, limit: int = 40) -> None:
    d = a.diagnosis
    style = VERDICT_STYLE.get(d.verdict, "bold")
    reason = f" ({d.reason})" if d.reason else ""
    out.print(f"[{style}]verdict: {d.verdict}{reason}[/{style}]  confidence {d.confidence:.0%}")
    if d.path_mtu:
        mss = f"   recommended MSS: {d.recommended_mss}" if d.recommended_mss else ""
        out.print(f"path MTU: {d.path_mtu}{mss}")
    else:
        _print_bracket(out, a)
    for change in a.role_changes:
        out.print(f"[yellow]roles:[/yellow] {escape(printable(change, 600))}")
    for role, v in a.vantage.items():
        cap = a.captures[role]
        why = "; ".join(v.reasons[:2])
        out.print(
            f"capture {escape(role)} ({escape(printable(cap.name, 120))}): taken {v.where}"
            f" - {escape(printable(why, 300))}"
        )
    from .diagnose.verdicts import CAP_WHY  # loaded already by the analysis

    lowered = [f for f in d.confidence_factors if f["delta"] < 0 and f["why"] != CAP_WHY]
    if lowered:
        out.print("confidence lowered by: " + "; ".join(escape(printable(f["why"], 200)) for f in lowered))
    out.print()
    out.print(escape(printable(d.explanation, 4000)))
    if d.fix:
        out.print()
        out.print(f"[bold]fix:[/bold] {escape(printable(d.fix.summary, 2000))}")
        for title, commands in (("recommended", d.fix.recommended), (d.fix.ALTERNATIVES, d.fix.alternatives)):
            if commands:
                out.print(f"  [bold]{title}:[/bold]")
            for cmd in commands:
                out.print(f"  # {escape(d.fix.comment(cmd))}")
                out.print(f"  {escape(cmd['command'])}", soft_wrap=True)  # one line: pasted into a shell
        for note in d.fix.notes:  # a note may quote the capture metadata (clamp rules): printable first
            out.print(f"  - {escape(printable(note, 2000))}")
        if d.fix.settings:
            out.print(f"  [bold]{escape(printable(d.fix.settings_heading, 400))}:[/bold]")
            for setting in d.fix.settings:
                out.print(f"    {escape(printable(setting['line'], 1000))}")
        if d.fix.snippets:
            files = "; ".join(s["what"].split(" (")[0] for s in d.fix.snippets)
            out.print(f"  files to apply (report.md, report.html, report.json fix.snippets): {escape(files)}")
    verdicts = a.verdicts.assign(rank=a.verdicts["verdict"].map(Verdict.ranks()))
    ranked = verdicts.sort_values(["rank", "capture", "conn"], ascending=[False, True, True], kind="stable")
    shown = ranked if limit <= 0 else ranked.head(limit)
    table = Table(title="connections", show_edge=False, header_style="bold", title_justify="left")
    for col in ("capture", "#", "service", "client", "verdict", "codes"):
        # tokens an engineer copies (address:port, codes) are never cut; the service name wraps at spaces
        table.add_column(col, overflow="fold", no_wrap=col != "service")
    for row in shown.itertuples(index=False):
        table.add_row(
            row.capture,
            str(row.conn),
            escape(printable(row.service, 80)),
            escape(row.client),
            row.verdict + (f" ({row.reason})" if row.reason else ""),
            row.codes,
        )
    out.print()
    out.print(table)
    if len(shown) < len(ranked):
        hidden = ranked["verdict"].iloc[len(shown) :].value_counts()
        counts = ", ".join(f"{n} {v}" for v, n in hidden.items())
        out.print(
            f"  … {len(ranked) - len(shown)} more connections ({counts}): --limit 0, --json or the report"
        )
    out.print()
    out.print("[bold]findings[/bold]")
    findings = a.findings_list
    if 0 < limit < len(findings):  # the loudest first, then in code order as always
        loud = sorted(range(len(findings)), key=lambda i: -Severity(findings[i].severity).rank)
        keep = set(loud[:limit])
        findings = [f for i, f in enumerate(findings) if i in keep]
    for f in findings:
        where = f"{f.capture}" + (f" #{f.conn}" if f.conn >= 0 else "")
        where += f" ({stream_filter(f.tcp_stream)})" if f.tcp_stream >= 0 else ""
        out.print(
            f"  {f.code} {escape('[' + f.severity + ']')} {escape(where)}: {escape(printable(f.message, 600))}"
        )
        if f.wireshark_filter:
            out.print(f"       wireshark: {escape(printable(f.wireshark_filter, 400))}", soft_wrap=True)
    if len(findings) < len(a.findings_list):
        out.print(
            f"  … {len(a.findings_list) - len(findings)} more findings: --limit 0, --json or the report"
        )
    check = a.wireshark_check
    if check is not None:  # analyze --wireshark: one line, and the frames Wireshark sees otherwise
        out.print()
        out.print(f"[bold]Wireshark's word:[/bold] {escape(printable(check.summary(), 600))}")
        if len(check.disagreements):
            out.print(check.rich_table(only_disagreements=True))


def _print_bracket(out: Console, a) -> None:
    """No single path MTU: say what the captures do prove, when they prove anything."""
    for ipv, p in a.context.path.items():
        if p.low or p.high:
            low = f"at least {p.low}" if p.low else ""
            high = f"less than {p.high}" if p.high else ""
            out.print(f"path MTU (IPv{ipv}): {' and '.join(x for x in (low, high) if x)} bytes")


@app.command(cls=Command)
def capture(
    container: Annotated[
        str | None,
        typer.Option(
            "--container",
            metavar="NAME",
            help="A running Docker container, by name or ID (docker inspect; DOCKER_HOST is honoured).",
        ),
    ] = None,
    pid: Annotated[
        int | None,
        typer.Option(
            "--pid",
            metavar="PID",
            help="Any process of the container (podman, containerd, nerdctl, unshare -n).",
        ),
    ] = None,
    netns: Annotated[
        str | None, typer.Option("--netns", metavar="NAME", help="A named network namespace (ip netns list).")
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Write container.pcapng, host.pcapng, pcapmtu-capture.json and the report here (created if "
            "missing; other files in it are left alone).",
        ),
    ] = Path("pcapmtu-capture"),
    iface: Annotated[
        str, typer.Option("--iface", metavar="IFACE", help="The interface captured inside the container.")
    ] = "eth0",
    host_iface: Annotated[
        str | None,
        typer.Option(
            "--host-iface",
            metavar="IFACE",
            help="The host's uplink to capture. Default: the interface of the host's route to --target (or to "
            "the --reproduce URL's server), else of its default route.",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="ADDR",
            help="The server's address: picks the uplink (and, with --reproduce, receives the DF pings). Default: the "
            "--reproduce URL's address.",
        ),
    ] = None,
    duration: Annotated[
        float,
        typer.Option(
            "--duration",
            metavar="SECONDS",
            help="Stop both captures after this long; with --reproduce, at most this long (they stop when the "
            "reproduction is done).",
        ),
    ] = 60.0,
    snaplen: Annotated[
        int,
        typer.Option(
            "--snaplen",
            metavar="BYTES",
            help="Bytes kept of each packet (tcpdump -s): all headers plus the payload where TLS hellos and DNS "
            "answers are; 0 keeps whole packets.",
        ),
    ] = 512,
    max_size: Annotated[
        str,
        typer.Option(
            "--max-size", metavar="SIZE", help="Stop both captures when either file reaches SIZE (K, M, G)."
        ),
    ] = "100M",
    bpf: Annotated[
        str | None,
        typer.Option(
            "--filter",
            metavar="EXPR",
            help="tcpdump filter for both captures. Default: TCP, ICMP, ICMPv6, DNS and the outer packets of "
            "VXLAN, Geneve, GRE and IP-in-IP, also behind a VLAN tag on Ethernet.",
        ),
    ] = None,
    reproduce_url: Annotated[
        str | None,
        typer.Option(
            "--reproduce",
            metavar="URL",
            help="While capturing: request URL from inside the container (its curl, else the host's curl in its "
            "namespace), then bisect the path MTU with DF pings to the server.",
        ),
    ] = None,
    reproduce_timeout: Annotated[
        float,
        typer.Option(
            "--reproduce-timeout",
            metavar="SECONDS",
            help="How long the reproduced request may take (curl --max-time).",
        ),
    ] = 20.0,
    no_analyze: Annotated[
        bool, typer.Option("--no-analyze", metavar="", help="Only capture: no analysis, no report.")
    ] = False,
    print_k8s: Annotated[
        str | None,
        typer.Option(
            "--print-k8s",
            metavar="POD",
            help="Print the commands that take both captures of a Kubernetes pod (kubectl debug: an ephemeral "
            "container in the pod, a debug pod on its node; kubectl cp) and exit; runs nothing, needs no root. "
            "With --container NAME: the pod's container.",
        ),
    ] = None,
    k8s_namespace: Annotated[
        str, typer.Option("--namespace", "-n", metavar="NS", help="With --print-k8s: the pod's namespace.")
    ] = "default",
    k8s_image: Annotated[
        str,
        typer.Option(
            "--image",
            metavar="IMAGE",
            help="With --print-k8s: the debug image (tcpdump, iproute2, curl, ping and tar in it).",
        ),
    ] = "nicolaka/netshoot",
    k8s_runtime: Annotated[
        str,
        typer.Option(
            "--runtime",
            metavar="NAME",
            help="With --print-k8s: the nodes' container runtime, containerd or cri-o (the crictl route).",
        ),
    ] = "containerd",
    force: Annotated[bool, typer.Option("--force", metavar="", help=FORCE_HELP)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar="", help=QUIET_HELP)] = False,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help=DEBUG_HELP)] = False,
) -> None:
    """Take both captures at once (root, on the docker host): tcpdump in the container's network namespace
    and on the host's uplink, with the MTUs on the way and the MSS clamps recorded; then analyze them.

    Exit code as `analyze` (0, 1, 3); 2 when the captures cannot be taken or are interrupted (Ctrl-C): one
    line, no tcpdump left running, what was captured kept.
    """
    from .capture import namespaces, reproduce, session

    start_up_done()
    if print_k8s is not None:
        _print_k8s(print_k8s, k8s_namespace, container, k8s_image, k8s_runtime, debug)
    say = (
        (lambda _line: None)
        if quiet
        else (lambda line: err.print(f"pcapmtu: {escape(printable(line, 400))}"))
    )
    try:  # Ctrl-C outside the capture itself (docker inspect, the analysis): one line too, exit 2
        with _errors(debug):
            chosen = [
                o
                for o, v in (("--container", container), ("--pid", pid), ("--netns", netns))
                if v is not None
            ]
            if len(chosen) != 1:
                raise UsageError(
                    "say which container: one of --container NAME, --pid PID, --netns NAME"
                    + (f" (not {' and '.join(chosen)} together)" if chosen else "")
                )
            if not reproduce_timeout > 0:
                raise UsageError(f"--reproduce-timeout {reproduce_timeout:g}: a number of seconds above 0")
            if not duration > 0:
                raise UsageError(f"--duration {duration:g}: a number of seconds above 0")
            if not 0 <= snaplen <= 262144:
                raise UsageError(f"--snaplen {snaplen}: 0 (whole packets) to 262144 bytes")
            try:
                max_bytes = parse_size(max_size)
            except UsageError as exc:
                raise UsageError(f"--max-size: {exc}") from None
            if max_bytes <= 0:
                raise UsageError("--max-size: a size above 0")
            namespaces.require_root()
            namespaces.require_tools()
            _claim(out, "--out", [Path(f) for f in session.planned_files()], force)
            if not no_analyze:
                _claim(out, "--out", [Path(f) for f in REPORT_FILES], force, REPORT_PLOTS)
            if container is not None:
                ns = namespaces.of_container(container)
            elif pid is not None:
                ns = namespaces.of_pid(pid)
            else:
                ns = namespaces.of_netns(str(netns))
            if namespaces.same_as_ours(ns):
                raise UsageError(
                    f"{chosen[0]} {ns.name}: that is the host's own network namespace (host networking?); "
                    "capture on the host's uplink with tcpdump alone"
                )
            if reproduce_url is not None:
                _name, address = reproduce.url_host(reproduce_url)
                target = target or address
            plan = session.Plan(
                ns=ns,
                out=out,
                iface=iface,
                host_iface=host_iface,
                target=target,
                duration_s=duration,
                snaplen=snaplen,
                max_bytes=max_bytes,
                bpf=bpf,
                reproduce_url=reproduce_url,
                reproduce_timeout_s=reproduce_timeout,
            )
            outcome = session.run(plan, say)
        for warning in outcome.warnings:
            say(f"warning: {warning}")
        written = ", ".join(p.name for p in outcome.files.values())
        say(f"wrote {written} and {outcome.metadata_path.name} in {out}")
        if no_analyze:
            raise typer.Exit(Exit.OK)
        from .diagnose.analysis import analyze as run_analysis
        from .render.report import write_report

        host_mtu, container_mtu, clamp_rules, recorded_platform = _recorded_facts(
            [outcome.files["container"]], None, None, quiet
        )
        with _errors(debug, "analysing the captures"):
            result = run_analysis(
                outcome.files["host"],
                outcome.files["container"],
                host_mtu=host_mtu,
                container_mtu=container_mtu,
                clamp_rules=clamp_rules,
                recorded_platform=recorded_platform,
            )
            write_report(result, out, force=True, helpers=_figure_helpers())
        if not quiet:
            _print_analysis(Out(highlight=False, width=None if sys.stdout.isatty() else 160), result)
            Out(highlight=False, soft_wrap=True).print(
                f"report: {escape(str(out / 'report.html'))} (and report.md, report.json, plots/)"
            )
        raise typer.Exit(VERDICT_EXIT[result.verdict])
    except KeyboardInterrupt:
        err.print(f"pcapmtu: interrupted; anything captured is in {escape(str(out))}")
        raise typer.Exit(Exit.BAD_INPUT) from None


@app.command(cls=Command)
def export(
    files: Annotated[list[Path], typer.Argument(metavar="CAPTURE", help="Capture files to export.")],
    to: Annotated[
        Path,
        typer.Option(
            "--to",
            "--out",
            metavar="DIR",
            help="Directory to write into: one folder per table, one Parquet file per capture (created if "
            "missing; other files in it are left alone).",
        ),
    ],
    no_findings: Annotated[
        bool,
        typer.Option(
            "--no-findings", metavar="", help="Only the capture tables: no analysis, no findings (faster)."
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", metavar="", help=FORCE_HELP)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar="", help=QUIET_HELP)] = False,
    max_packets: Annotated[int | None, _max_packets(EACH, BYTES_PER_PACKET)] = None,
    max_memory: Annotated[str | None, _max_memory(EACH)] = None,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help=DEBUG_HELP)] = False,
) -> None:
    """Write the packets, flows, dns, icmp (and findings) tables as Parquet, one row per packet/flow/answer."""
    from .render.parquet import PartialExport, planned_files
    from .render.parquet import export as export_tables

    start_up_done()
    code = Exit.OK
    with _errors(debug):
        max_packets, max_memory = _budget(max_packets, max_memory)
        _claim(to, "--to", planned_files(list(files), findings=not no_findings), force)
        try:
            written = export_tables(
                list(files), to, findings=not no_findings, max_packets=max_packets, max_memory=max_memory
            )
        except PartialExport as exc:  # the captures that could be read were written
            for problem in exc.failed:
                err.print(f"pcapmtu: {escape(printable(problem, 400))}")
            written, code = exc.written, Exit.BAD_INPUT
    if not quiet:
        Out(highlight=False, soft_wrap=True).print(
            f"wrote {len(written)} Parquet files under {escape(str(to))}"
        )
    raise typer.Exit(code)


FAIL_ON_DEFAULT = "mtu_blackhole,mtu_blackhole_recovered"
FAIL_ON_CHOICES = (*(str(v) for v in Verdict), "error")


def _fail_on(text: str) -> frozenset[str]:
    """--fail-on: verdicts (and `error`: a group that could not be analysed), or `none`."""
    words = {w.strip().lower() for w in text.split(",") if w.strip()}
    if words == {"none"}:
        return frozenset()
    wrong = sorted(words - set(FAIL_ON_CHOICES))
    if wrong or not words:
        raise UsageError(
            f"--fail-on {text}: not a verdict ({', '.join(wrong) or 'empty'}); choose from "
            f"{', '.join(FAIL_ON_CHOICES)}, or none"
        )
    return frozenset(words)


@app.command(cls=Command)
def scan(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH",
            help="Captures, directories (searched for .pcap, .pcapng, .cap, compressed too) and globs.",
        ),
    ],
    jsonl: Annotated[
        Path | None,
        typer.Option(
            "--jsonl", metavar="FILE", help="Write one JSON line per group here as it finishes (- : stdout)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Write scan.jsonl, index.html (worst first) and reports/GROUP/ here; a run into the same "
            "DIR resumes, skipping the groups it finished.",
        ),
    ] = None,
    parquet: Annotated[
        Path | None,
        typer.Option(
            "--parquet",
            metavar="DIR",
            help="Write the groups, findings and flows tables here, partitioned by group (DuckDB, Spark).",
        ),
    ] = None,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            metavar="VERDICTS",
            help="Exit 1 when a group's verdict is one of these (comma-separated; `error`: a group that could "
            "not be analysed; `none`: never).",
        ),
    ] = FAIL_ON_DEFAULT,
    workers: Annotated[
        int | None,
        typer.Option(
            metavar="N", help="Worker processes (default: one per core; with --dask local: its workers)."
        ),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Run the groups on a Dask cluster: tcp://HOST:8786, or `local` for a LocalCluster "
            "(pip install 'pcapmtu[fleet]'). Workers must see the captures at the same paths.",
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            metavar="FILE",
            help="Resume from, and keep progress in, this file (default: DIR/scan.jsonl of --out).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", metavar="", help="Analyse every group again, even those an earlier run finished."
        ),
    ] = False,
    limit: Annotated[
        int,
        typer.Option(metavar="N", help="Groups shown in the terminal summary, the worst first (0 = all)."),
    ] = 40,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar="", help=QUIET_HELP)] = False,
    max_packets: Annotated[int | None, _max_packets("a group's captures together", BYTES_PER_PACKET)] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            metavar="SIZE",
            help="Memory for the tables of one group, in each worker (bytes, or with K, M, G, T; 0 = no "
            "limit). Default: 3/4 of the available memory shared by the local workers; on Dask, 3/4 of each "
            "worker's memory limit. A group over it gets an error line.",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help=DEBUG_HELP)] = False,
) -> None:
    """Scan many captures: group them into incidents, analyse each group in parallel, one JSON line each.

    Exit code 0: no group's verdict is in --fail-on; 1: one is; 2: bad usage, nothing to scan, or every
    group failed; 4: a bug. docs/scan.md has the line schema, the grouping rules and Dask.
    """
    from .scan.job import JobOptions
    from .scan.run import INDEX, STATE
    from .scan.run import scan as run_scan

    start_up_done()
    with _errors(debug):
        max_packets, max_memory_bytes = _budget(max_packets, max_memory)
        failing = _fail_on(fail_on)
        if workers is not None and workers < 1:
            raise UsageError(f"--workers {workers}: at least 1")
        if out is not None:
            _claim(out, "--out", [] if (out / STATE).exists() else [INDEX], force)
        if parquet is not None and parquet.exists() and not parquet.is_dir():
            raise UsageError(f"--parquet {parquet}: exists and is not a directory")
        if parquet is not None and _missing("pyarrow"):  # the workers write it; say so before any work
            raise UsageError("--parquet needs pyarrow: pip install 'pcapmtu[export]'")
        if state is not None and state.is_dir():
            raise UsageError(f"--state {state}: is a directory; give a file")
    lines_out = None
    with _errors(debug), _scan_engine(dask, workers, parquet is not None) as engine:
        default_memory = None
        if max_memory_bytes is None and engine.name == "local":
            from .scan.local import worker_memory

            default_memory = worker_memory(engine.workers)
        options = JobOptions(
            max_packets=max_packets,
            max_memory=max_memory_bytes if max_memory_bytes is not None else default_memory,
            reports=str(out.resolve()) if out is not None else None,
            parquet=str(parquet.resolve()) if parquet is not None else None,
            base=os.getcwd(),
        )
        from .scan.state import dumps

        to_stdout = jsonl is not None and str(jsonl) == "-"
        try:
            lines_out = None if jsonl is None or to_stdout else open(jsonl, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"--jsonl {jsonl}: cannot write it ({exc.strerror})") from None

        def on_line(line: dict) -> None:
            if line["errors"]:  # one line per group's problem, as `inspect` does per capture
                what = printable(line["name"], 200)
                err.print(f"pcapmtu: {escape(what)}: {escape(printable(line['errors'][0], 600))}")
            text = dumps(line) + "\n"
            if to_stdout:
                _write(text)
            elif lines_out is not None:
                lines_out.write(text)
                lines_out.flush()

        try:
            with _scan_progress(quiet) as tick:
                result = run_scan(
                    [str(p) for p in paths],
                    engine,
                    options,
                    out=out,
                    state=state if state is not None else (out / STATE if out is not None else None),
                    force=force,
                    on_line=on_line,
                    progress=tick,
                )
        finally:
            if lines_out is not None:
                lines_out.close()
    if not quiet:
        from .render.scan_summary import counts_sentence, summary_table

        # the summary goes where people read: stderr when stdout carries the JSON lines
        wide = None if (sys.stderr if to_stdout else sys.stdout).isatty() else 160
        console = (
            Console(stderr=True, highlight=False, width=wide)
            if to_stdout
            else Out(highlight=False, width=wide)
        )
        console.print(summary_table(result.lines, limit))
        if 0 < limit < len(result.lines):
            console.print(f"  … {len(result.lines) - limit} more groups: --limit 0, --jsonl or --out")
        resumed = f"; {result.resumed} done by an earlier run, skipped" if result.resumed else ""
        console.print(f"{escape(counts_sentence(result.lines))} ({result.captures} captures{resumed})")
        if result.index is not None:
            console.print(f"index: {escape(str(result.index))}")
    verdicts = {line.get("verdict") or "error" for line in result.lines}
    if verdicts & failing:
        raise typer.Exit(Exit.MTU_PROBLEM)
    if result.lines and verdicts == {"error"}:
        err.print("pcapmtu: no group could be analysed (see the errors above)")
        raise typer.Exit(Exit.BAD_INPUT)
    raise typer.Exit(Exit.OK)


def _missing(module: str) -> bool:
    """Not installed (found on the path, not in sys.modules: `_start_up` keeps pyarrow out of this process)."""
    from importlib.machinery import PathFinder

    return PathFinder.find_spec(module) is None


@contextmanager
def _scan_engine(dask: str | None, workers: int | None, parquet: bool):
    """The engine that runs the groups: the local process pool, or a Dask cluster (imported only then)."""
    if dask:
        from .scan.dask_cluster import DaskEngine

        engine = DaskEngine(dask, workers)
    else:
        from .scan.local import LocalEngine, cores

        engine = LocalEngine(workers or cores(), parquet=parquet)
    try:
        yield engine
    except KeyboardInterrupt:
        engine.close(interrupted=True)  # the groups in flight are dropped: scan.jsonl keeps those done
        raise
    else:
        engine.close()


def _scan_progress(quiet: bool):
    """One bar for the whole run (groups done of all)."""

    def columns() -> tuple:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())

    return _bars(quiet, columns, lambda phase, _total: phase)


@app.command(cls=Command)
def rules(
    as_json: Annotated[
        bool,
        typer.Option("--json", metavar="", help="Print the rules as one JSON document (docs/json.md)."),
    ] = False,
) -> None:
    """List every detector code with its name and severity."""
    from .diagnose.detectors import RULES

    start_up_done()
    if as_json:
        from .render.rulesdoc import rules_json

        _write(rules_json(RULES) + "\n")
        return
    out = Out(highlight=False)
    table = Table(show_edge=False, header_style="bold")
    for col in ("code", "name", "severity", "verdict"):
        table.add_column(col)
    for code in sorted(RULES):
        r = RULES[code]
        table.add_row(code, r.name, str(r.severity), r.verdict_text)
    out.print(table)


@app.command(cls=Command)
def explain(
    code: Annotated[
        str, typer.Argument(metavar="CODE", help="A detector code, e.g. B001 (see `pcapmtu rules`).")
    ],
) -> None:
    """What a detector code means, why it matters, and the fix."""
    from .diagnose.detectors import RULES, readable

    start_up_done()
    r = RULES.get(code.upper())
    if r is None:
        err.print(f"pcapmtu: unknown code {escape(printable(code, 20))}; `pcapmtu rules` lists them")
        raise typer.Exit(Exit.BAD_INPUT)
    out = Out(highlight=False, soft_wrap=True)  # the terminal wraps; rich would split mid-word
    out.print(f"[bold]{r.code} {r.name}[/bold] ({r.severity})")
    out.print(f"message: {escape(readable(r.message))}")
    out.print(f"why: {escape(r.why)}")
    out.print(f"fix: {escape(readable(r.fix))}")
    if r.implies is not None:
        out.print(f"verdict for the connection: {r.verdict_text}")
    out.print(f"example: {escape(r.message.format(**r.example))}")
    if r.references:
        out.print(f"references: {escape(', '.join(r.references))}")


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def _completion_help() -> str:
    from .completion import INSTALL

    lines = [
        "Print the shell completion script: command names, options, and file paths for captures and "
        "directories. Install it once (more ways: docs/cli.md, man pcapmtu):",
        "",
    ]
    lines += [f"* {shell} ({ways[0][1]}): `{ways[0][0]}`" for shell, ways in INSTALL.items()]
    return "\n".join(lines)


@app.command(cls=Command, help=_completion_help())
def completion(
    shell: Annotated[Shell, typer.Argument(metavar="SHELL", help="bash, zsh or fish.", case_sensitive=False)],
) -> None:
    from .completion import SCRIPTS

    start_up_done()
    _write(SCRIPTS[shell.value])


def _print_capture(out: Console, cap: Capture, limit: int) -> None:
    from .render.measures import COLUMNS as MEASURES
    from .render.measures import measures

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
    for col in ("#", "client", "server", "name", *MEASURES):
        table.add_column(col, overflow="fold")
    shown = flows if limit <= 0 else flows.head(limit)
    cells = measures(shown)
    for i, row in enumerate(shown.itertuples(index=False)):
        table.add_row(
            str(row.conn),
            escape(endpoint(row.client_ip, row.client_port)),
            escape(endpoint(row.server_ip, row.server_port)),
            escape(printable(row.name, 60)),
            *(cells[name][i] for name in MEASURES),
        )
    out.print(table)
    if len(shown) < len(flows):
        out.print(f"  … {len(flows) - len(shown)} more (use --limit 0 or --json)")
    out.print()


def _start_up(args: list[str]) -> None:
    """Process settings of the command line (not of `import pcapmtu`): what a command needs loaded, fast.

    - pyarrow stays out of commands that do not write Parquet. pandas imports it whenever it is
      installed (0.2 s and ~40 MiB, a tenth of `inspect` on a big capture) to back its string columns;
      the command line's output is the same with Python strings.
    - numpy's OpenBLAS gets one thread: pcapmtu does no linear algebra, and the threads it would start
      on every core spin while they wait for work (~3 % of an `inspect` run's CPU). `OPENBLAS_NUM_THREADS`
      set by the user wins.
    - The garbage collector rests while the libraries load (`memory.pause_collector_for_start_up`); each
      command calls `start_up_done()` once its imports are in.
    """
    command = next((a for a in args if not a.startswith("-")), "")
    if command != "export" and "pandas" not in sys.modules:
        sys.modules.setdefault("pyarrow", None)  # type: ignore[arg-type]  # None: "not installed"
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    pause_collector_for_start_up()


def main() -> None:
    """Console-script entry point: an unexpected error is one line and exit code 4 (--debug: traceback)."""
    _start_up(sys.argv[1:])
    if os.environ.get("_PCAPMTU_COMPLETE"):  # a completion script asks (completion.py), not typer's
        from .completion import VAR, respond

        sys.exit(respond(typer.main.get_command(app), os.environ[VAR]))
    try:
        app()
    except SystemExit as stop:
        if stop.code == Exit.INTERRUPTED:  # typer turns Ctrl-C into exit 130, silently: say it in one line
            err.print("pcapmtu: interrupted")
        raise
    except Exception as exc:  # noqa: BLE001 - never a traceback for users
        if "--debug" in sys.argv:
            raise
        err.print(f"pcapmtu: internal error: {escape(printable(exc, 300))} (run with --debug for details)")
        sys.exit(Exit.INTERNAL)


if __name__ == "__main__":
    main()
