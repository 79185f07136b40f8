"""docs/cli.md and the man page, generated from the command line's own definitions:

    python -m pcapmtu.clidoc > docs/cli.md
    python -m pcapmtu.clidoc --man > docs/pcapmtu.1

Tests compare both files with this output, so neither reference can drift from `--help`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import typer

from .cli import Exit, app
from .completion import INSTALL

EXIT_MEANINGS = {
    Exit.OK: "nothing wrong found (`analyze`: healthy; `scan`: no group's verdict is in `--fail-on`), or "
    "every capture was read (`inspect`, `export`)",
    Exit.MTU_PROBLEM: "`analyze` (or `capture`, which analyses what it took) found an MTU problem: "
    "`mtu_blackhole` or `mtu_blackhole_recovered`; `scan`: a group's verdict is in `--fail-on` (by default "
    "those two)",
    Exit.BAD_INPUT: "bad input or usage: a capture could not be read, a capture over the read limits "
    "(`--max-packets`, `--max-memory`), a wrong option (one line on stderr); `capture` could not take the "
    "captures (no root, no such container, a tcpdump that would not start) or was interrupted; `scan`: no "
    "capture found, a malformed manifest, or no group could be analysed (a damaged capture is its group's "
    "error line, docs/scan.md)",
    Exit.OTHER_PROBLEM: "`analyze` (or `capture`) found another problem (`not_mtu`) or could not tell "
    "(`inconclusive`)",
    Exit.INTERNAL: "a bug in pcapmtu: one line on stderr, never a traceback unless `--debug`; please report it",
    Exit.INTERRUPTED: "interrupted (Ctrl-C, SIGINT): `pcapmtu: interrupted` on stderr; `scan` run again resumes "
    "where it stopped; `capture` exits 2 instead and keeps what it captured",
}

# Rules every command follows, in the words of docs/cli.md (each paragraph one list item).
OUTPUT_RULES = (
    "`analyze --out DIR`, `capture --out DIR` and `export --to DIR` (also spelled `--out`) write into `DIR` "
    "by one rule. A missing `DIR` is created. An existing one may hold anything: the captures themselves, "
    "notes, an earlier report, other captures' tables; pcapmtu writes its own names there and leaves every "
    "other file alone.",
    "A file pcapmtu would replace needs `--force`: without it the command writes nothing, names the file on "
    "one line (`pcapmtu: DIR/report.html exists (and 8 more pcapmtu would replace); add --force ...`) and "
    "exits 2. `analyze` writes `report.html`, `report.md`, `report.json` and `plots/` (`timeline`, `sizes`, "
    "`mss`, `tsg-*`); `capture` writes `container.pcapng`, `host.pcapng`, `pcapmtu-capture.json` and "
    "analyze's files; `export` writes `TABLE/CAPTURE.parquet` (docs/export.md). `--force` replaces those "
    "files and nothing else; stale plots of an earlier report stay.",
    "A `DIR` that exists as a file is an error (exit 2), with or without `--force`.",
    "`scan --out DIR` follows the same rule, and a `DIR` that holds an earlier scan's `scan.jsonl` is its "
    "own: a scan into it resumes, skipping the groups already done, and replaces `index.html`, "
    "`scan.jsonl` and `reports/GROUP/` files; `--force` there analyses every group again (docs/scan.md).",
    "`--quiet` (`-q`) prints nothing but errors: no progress, no terminal report, no `report: ...` or "
    "`wrote N Parquet files` line. The exit code says how it went; files are still written, and `--json` "
    "still prints its document.",
)

# The read limits, in the words of docs/cli.md (each paragraph one list item); ingest/budget.py has the numbers.
LIMIT_RULES = (
    "`inspect`, `analyze` and `export` stop reading a capture that holds more than `--max-packets N` packets, "
    "or whose tables would take more than `--max-memory SIZE` of memory, after the batch of records (up to "
    "16 MiB of the file) that crossed the limit: long before a decompression bomb (300 KB of gzip, or 16 KB "
    "of zstd, can hold 10 million zero-length records) or a huge capture fills the machine's memory. The command names the "
    "capture, the limit and the packets read on one line (`pcapmtu: big.pcap.gz: stopped reading after "
    "1,048,576 packets: more than the limit of 1,000 packets (--max-packets); raise it with --max-packets N "
    "(0: no limit)`) and exits 2; `inspect` and `export` go on with the other captures.",
    "The memory estimate is the peak memory a packet costs, measured (docs/performance.md), times the "
    "packets kept, plus the bytes kept beside them (DNS and ICMP payloads, SACK blocks): 400 bytes a packet "
    "for `analyze` and `export` (which keep every packet column; `analyze` peaked at 377 bytes a packet on "
    "a 4M-packet capture), 200 bytes a TCP, DNS or ICMP packet for `inspect` (182 measured). Checked once per "
    "batch, it costs nothing per packet.",
    "Defaults follow the machine: `--max-memory` is 3/4 of the memory available when the command starts "
    "(`MemAvailable` in /proc/meminfo: what can be taken without swapping; the quarter left is for the "
    "interpreter and its libraries, about 100 MiB, the estimate's spread and the machine's other work), and "
    "`--max-packets` is what that memory holds at the cost of a packet (on a machine with 24 GiB available, "
    "`analyze` stops past 18 GiB or about 48 million packets). `0` turns a limit off; `--max-memory 0` "
    "without `--max-packets` turns both off. SIZE is bytes, or with K, M, G or T (powers of 1024): `8G`, "
    "`512M`.",
    "`analyze` applies the limits to all its captures together (it holds them all at once); `inspect` and "
    "`export` to each capture (they hold one at a time). The Python API takes the same limits: "
    "`pcapmtu.read(path, max_packets=, max_memory=)`, `pcapmtu.analyze(..., max_packets=, max_memory=)` "
    "and `pcapmtu.export(..., max_packets=, max_memory=)`; a capture over them raises `CaptureError` "
    "(its subclass `pcapmtu.errors.TooBig`).",
    "A compressed capture is first decompressed into a temporary file (records are re-read from it by "
    "offset), and the limits apply to reading that file: they bound the memory, not the time it takes to "
    "write it (3 MB of gzip holding 100 million zero-length records writes 1.6 GB there, ~10 s, before the "
    "read stops at the limit). The copy itself stops before it fills its disk: decompression ends with "
    "one line and exit 2 when less than 1 GiB or 5 % of the temporary directory's disk would stay free "
    "(`TMPDIR` chooses that directory).",
)


@dataclass
class Row:
    names: list[str]  # `--out`, `-q`; an argument's metavar
    takes: str  # the option's metavar (`DIR`), empty for flags and arguments
    default: str
    help: str


@dataclass
class Command:
    name: str
    usage: str  # what follows `pcapmtu NAME` in the usage line, without [OPTIONS]
    help: str
    rows: list[Row]


def commands() -> list[Command]:
    """Every command as --help shows it: the usage line's arguments, the help text, each parameter."""
    group = typer.main.get_command(app)
    out = []
    for name, command in group.commands.items():
        ctx = typer.Context(command, info_name=name, parent=typer.Context(group, info_name="pcapmtu"))
        args = [p for p in command.params if p.param_type_name == "argument"]
        usage = " ".join(piece for p in args for piece in p.get_usage_pieces(ctx))
        rows = []
        for p in command.params:
            if p.param_type_name == "argument":
                rows.append(Row([p.metavar or p.name.upper()], "", "", p.help or ""))
                continue
            default = "" if p.required or p.default in (None, False) else str(p.default)
            rows.append(Row([*p.opts, *p.secondary_opts], p.metavar or "", default, p.help or ""))
        out.append(Command(name, usage, (command.help or "").strip(), rows))
    return out


def markdown() -> str:
    lines = [
        "# Command line",
        "",
        "Generated from `analyzer/pcapmtu/cli.py` by `python -m pcapmtu.clidoc`; do not edit by hand.",
        "",
        "`pcapmtu --version` prints the version; `pcapmtu COMMAND --help` shows the same as below, and so does "
        "the man page [pcapmtu.1](pcapmtu.1) (`man -l docs/pcapmtu.1`).",
        "",
        "## Exit codes",
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    lines += [f"| {int(code)} | {text} |" for code, text in EXIT_MEANINGS.items()]
    lines += ["", "## Output directories and --quiet", ""]
    lines += [f"- {rule}" for rule in OUTPUT_RULES]
    lines += ["", "## Read limits", ""]
    lines += [f"- {rule}" for rule in LIMIT_RULES]
    lines += ["", "## Shell completion", "", COMPLETION_TEXT, ""]
    for shell, ways in INSTALL.items():
        lines += [f"{shell}:", "", "```sh"]
        lines += [line for command, where in ways for line in (f"# {where}", *command.split(" && "))]
        lines += ["```", ""]
    lines += [MAN_TEXT, ""]
    for c in commands():
        lines += [f"## `pcapmtu {c.name}{' ' + c.usage if c.usage else ''}`", "", c.help, ""]
        if c.rows:
            lines += ["| argument or option | default | meaning |", "|---|---|---|"]
        for r in c.rows:
            value = f" {r.takes}" if r.takes else ""
            names = ", ".join(f"`{n}{value}`" for n in r.names)
            default = f"`{r.default}`" if r.default else ""
            lines.append(f"| {names} | {default} | {r.help.replace('|', chr(92) + '|')} |")
        lines.append("")
    return "\n".join(lines)


COMPLETION_TEXT = (
    "`pcapmtu completion bash|zsh|fish` prints the completion script for that shell: command names, option "
    "names, and file paths where a command takes captures (`CAPTURE`, `FILE`) or a directory (`DIR`). "
    "Nothing guesses your shell. Install it once:"
)
MAN_TEXT = (
    "## Man page\n\n`docs/pcapmtu.1` is this page as a manual page: `man -l docs/pcapmtu.1`, or copy it to "
    "`~/.local/share/man/man1/` (or `/usr/local/share/man/man1/`) for `man pcapmtu`."
)


# ----------------------------------------------------------------------------------------------- man page
def _roff(text: str) -> str:
    """Running text as roff: escapes, `code` in bold, dashes that paste as ASCII, no line starting with a dot."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    text = re.sub(r"[^\x00-\x7f]", lambda m: f"\\[u{ord(m.group()):04X}]", text)
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def _paragraphs(text: str) -> list[str]:
    out = []
    for para in text.split("\n\n"):
        items = [line[2:] for line in para.split("\n") if line.startswith("* ")]
        if items:
            out += [f".IP \\(bu 2\n{_roff(item)}" for item in items]
        else:
            out += [".PP", _roff(" ".join(para.split()))]
    return out


def man() -> str:
    group = typer.main.get_command(app)
    lines = [
        '.TH PCAPMTU 1 "" "pcapmtu" "User Commands"',
        ".nh",  # option names, paths and commands are never hyphenated
        ".ad l",
        '.\\" Generated from analyzer/pcapmtu/cli.py by python -m pcapmtu.clidoc --man; do not edit by hand.',
        ".SH NAME",
        "pcapmtu \\- find MTU/MSS black holes in packet captures of container networks",
        ".SH SYNOPSIS",
        ".B pcapmtu",
        ".I COMMAND",
        "[\\fIOPTIONS\\fR] [\\fIARGS\\fR]...",
        ".br",
        ".B pcapmtu \\-\\-version",
        ".SH DESCRIPTION",
    ]
    lines += _paragraphs((group.help or "").strip())
    lines += [".SH COMMANDS"]
    for c in commands():
        lines += [f".SS pcapmtu {c.name} [OPTIONS]{' ' + _roff(c.usage) if c.usage else ''}"]
        lines += _paragraphs(c.help)
        if lines[-1].startswith(".IP") or lines[-2].startswith(".IP"):
            lines.append(".PP")  # back to the standard indentation for the parameters
        for r in c.rows:
            names = ", ".join(
                f"\\fB{_roff(n)}\\fR" + (f" \\fI{r.takes}\\fR" if r.takes else "") for n in r.names
            )
            default = f" (default: {_roff(r.default)})" if r.default else ""
            lines += [".TP", names, _roff(r.help) + default]
    lines += [".SH OUTPUT DIRECTORIES AND QUIET"]
    lines += [f".IP \\(bu 2\n{_roff(rule)}" for rule in OUTPUT_RULES]
    lines += [".SH READ LIMITS"]
    lines += [f".IP \\(bu 2\n{_roff(rule)}" for rule in LIMIT_RULES]
    lines += [".SH SHELL COMPLETION"]
    lines += _paragraphs(COMPLETION_TEXT)
    for shell, ways in INSTALL.items():
        lines += [f".SS {shell}"]
        for command, where in ways:
            lines += [
                ".PP",
                _roff(where[0].upper() + where[1:]) + ":",
                ".RS",
                ".nf",
                *(_roff(step) for step in command.split(" && ")),
                ".fi",
                ".RE",
            ]
    lines += [".SH EXIT STATUS"]
    for code, text in EXIT_MEANINGS.items():
        lines += [".TP", f".B {int(code)}", _roff(text)]
    lines += [
        ".SH SEE ALSO",
        "\\fBtcpdump\\fR(8), \\fBtshark\\fR(1), \\fBwireshark\\fR(1);",
        "the documentation in the \\fBdocs/\\fR folder of pcapmtu's source.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(man() if sys.argv[1:] == ["--man"] else markdown(), end="")
