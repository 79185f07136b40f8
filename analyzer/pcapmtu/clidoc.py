"""docs/cli.md, generated from the command line's own definitions: `python -m pcapmtu.clidoc > docs/cli.md`.

A test compares the file with this output, so the reference cannot drift from `--help`.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer

from .cli import Exit, app
from .completion import INSTALL

EXIT_MEANINGS = {
    Exit.OK: "nothing wrong found (`analyze`: healthy), or every capture was read (`inspect`, `export`)",
    Exit.MTU_PROBLEM: "`analyze` found an MTU problem: `mtu_blackhole` or `mtu_blackhole_recovered`",
    Exit.BAD_INPUT: "bad input or usage: a capture could not be read, a wrong option (one line on stderr)",
    Exit.OTHER_PROBLEM: "`analyze` found another problem (`not_mtu`) or could not tell (`inconclusive`)",
    Exit.INTERNAL: "a bug in pcapmtu: one line on stderr, never a traceback unless `--debug`; please report it",
}

# Rules every command follows, in the words of docs/cli.md (each paragraph one list item).
OUTPUT_RULES = (
    "`analyze --out DIR` and `export --to DIR` (also spelled `--out`) write into `DIR` by one rule. A missing "
    "`DIR` is created. An existing one may hold anything: the captures themselves, notes, an earlier "
    "report, other captures' tables; pcapmtu writes its own names there and leaves every other file alone.",
    "A file pcapmtu would replace needs `--force`: without it the command writes nothing, names the file on "
    "one line (`pcapmtu: DIR/report.html exists (and 8 more pcapmtu would replace); add --force ...`) and "
    "exits 2. `analyze` writes `report.html`, `report.md`, `report.json` and `plots/` (`timeline`, `sizes`, "
    "`mss`, `tsg-*`); `export` writes `TABLE/CAPTURE.parquet` (docs/export.md). `--force` replaces those "
    "files and nothing else; stale plots of an earlier report stay.",
    "A `DIR` that exists as a file is an error (exit 2), with or without `--force`.",
    "`--quiet` (`-q`) prints nothing but errors: no progress, no terminal report, no `report: ...` or "
    "`wrote N Parquet files` line. The exit code says how it went; files are still written, and `--json` "
    "still prints its document.",
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
        "`pcapmtu --version` prints the version; `pcapmtu COMMAND --help` shows the same as below.",
        "",
        "## Exit codes",
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    lines += [f"| {int(code)} | {text} |" for code, text in EXIT_MEANINGS.items()]
    lines += ["", "## Output directories and --quiet", ""]
    lines += [f"- {rule}" for rule in OUTPUT_RULES]
    lines += ["", "## Shell completion", "", COMPLETION_TEXT, ""]
    for shell, ways in INSTALL.items():
        lines += (
            [f"{shell}:", "", "```sh"] + [f"{command:<78} # {where}" for command, where in ways] + ["```", ""]
        )
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


if __name__ == "__main__":
    print(markdown(), end="")
