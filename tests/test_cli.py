"""The command line: exit codes, the --json contracts, hostile capture strings, help a newcomer can read."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pcapmtu import __version__
from pcapmtu.cli import app
from pcapmtu.ingest import native
from pcapmtu.render.jsondoc import FLOW_FIELDS
from support import packets as B
from support.environment import ROOT, SAMPLES, require_tool
from support.pcapwriter import Record, write_pcap

runner = CliRunner()
BLACKHOLE = SAMPLES / "blackhole_tls12"
HEALTHY = SAMPLES / "fixed_clamp_setmss"


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, f"exit {result.exit_code}\n{result.output}"


def test_version_and_help():
    result, out = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output, out
    assert ("C core" in result.output) == (native.core is not None), out  # which implementation runs
    result, out = invoke("--help")
    assert result.exit_code == 0 and "inspect" in result.output and "analyze" in result.output, out


def test_inspect_json_document_shape():
    result, out = invoke("inspect", "--json", BLACKHOLE / "container.pcap")
    assert result.exit_code == 0, out
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == 1
    (cap,) = doc["captures"]
    for key in ("path", "format", "link_types", "packets", "warnings", "flows"):
        assert key in cap
    assert cap["format"] == "pcap" and cap["link_types"] == ["EN10MB"]
    assert cap["flows"] and list(cap["flows"][0]) == FLOW_FIELDS
    https = [f for f in cap["flows"] if f["server_port"] == 443]
    assert https and https[0]["mss_client"] == 1460 and https[0]["name"]


def test_inspect_bad_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture")
    result, out = invoke("inspect", bad, BLACKHOLE / "container.pcap")
    assert result.exit_code == 2, out
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("pcapmtu:")]
    assert len(errors) == 1 and "not a capture file" in errors[0]


def test_analyze_blackhole_exit_1_and_json():
    result, out = invoke("analyze", "--json", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap")
    assert result.exit_code == 1, out
    doc = json.loads(result.stdout)
    for key in (
        "schema_version",
        "verdict",
        "confidence",
        "path_mtu",
        "recommended_mss",
        "findings",
        "flows",
    ):
        assert key in doc
    assert doc["verdict"] == "mtu_blackhole"
    assert doc["path_mtu"] == 1450 and doc["recommended_mss"] == 1410
    assert all({"code", "severity", "message", "evidence"} <= set(f) for f in doc["findings"])
    assert any(f["matched"] for f in doc["flows"] if f["capture"] == "container")


def test_analyze_healthy_exit_0_and_named_options():
    result, out = invoke(
        "analyze", "--host", HEALTHY / "host.pcap", "--container", HEALTHY / "container.pcap"
    )
    assert result.exit_code == 0, out
    assert "verdict: healthy" in result.output


def test_analyze_terminal_shows_fix_and_filters():
    result, out = invoke("analyze", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap")
    assert result.exit_code == 1, out
    assert "--set-mss 1410" in result.output
    assert "wireshark: ip.addr==" in result.output
    # each finding says its severity (rich once swallowed "[error]" as markup) and names its connection
    # as Wireshark numbers it
    assert re.search(r"^  B001 \[error\] container #1 \(tcp\.stream eq 1\): ", result.output, re.M), out
    assert re.search(r"^  M001 \[info\] host: ", result.output, re.M), out


def test_analyze_terminal_shows_the_worst_connections_and_findings_first_up_to_the_limit():
    """A busy capture must not flood the terminal: --limit N rows, the worst first, and what was left out."""
    args = ("analyze", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap")
    result, out = invoke(*args, "--limit", "1")
    assert result.exit_code == 1, out
    table = re.split(r"^connections +$", out, flags=re.M)[-1].split("\nfindings")[0]
    rows = [line for line in table.splitlines() if "│" in line]
    assert len(rows) == 1 and "mtu_blackhole" in rows[0] and "B001" in rows[0], out
    assert "… 2 more connections (2 healthy): --limit 0, --json or the report" in out
    listed = re.findall(r"^  ([A-Z]\d{3}) \[(\w+)\]", out, re.M)
    assert len(listed) == 1 and listed[0][1] == "error", out  # the loudest one
    everything, all_out = invoke(*args, "--limit", "0")
    total = len(re.findall(r"^  [A-Z]\d{3} \[", all_out, re.M))
    assert total > 1 and f"… {total - 1} more findings: --limit 0, --json or the report" in out
    assert "more connections" not in all_out and "more findings" not in all_out
    rows = [
        line for line in all_out.split("connections", 2)[2].split("findings")[0].splitlines() if "│" in line
    ]
    assert len(rows) == 3 and "mtu_blackhole" in rows[0], all_out  # the worst first, also with no limit


def test_analyze_without_captures_is_usage_error():
    result, out = invoke("analyze")
    assert result.exit_code == 2, out


def test_rules_and_explain():
    result, out = invoke("rules")
    assert result.exit_code == 0 and "B001" in result.output and "pmtud-blackhole" in result.output, out
    result, out = invoke("explain", "b001")
    assert result.exit_code == 0 and "RFC 2923" in result.output, out
    assert "{" not in result.output and "<full size>-byte" in result.output, out  # placeholders read as words
    result, out = invoke("explain", "Z999")
    assert result.exit_code == 2, out


def test_hostile_names_do_not_reach_the_terminal_raw(tmp_path):
    """A DNS name with terminal escapes and rich markup is shown inert."""
    evil = "\x1b[31mred[/]x[bold]y.example"
    query = B.udp("172.17.0.2", "198.18.0.53", 5353, 53, B.dns_answer(evil, "198.18.0.10"))
    pkts = [(999.0, query)] + B.handshake("172.17.0.2", "198.18.0.10", 40000, 443)
    path = tmp_path / "evil.pcap"
    write_pcap(path, [Record(t, B.ether(p)) for t, p in pkts])
    result, out = invoke("inspect", path)
    assert result.exit_code == 0, out
    assert "\x1b" not in result.output
    assert "\\x1b" in result.output and "[bold]y.example" in result.output


@pytest.mark.parametrize("args", [["--version"], ["inspect", str(BLACKHOLE / "container.pcap")]])
def test_console_script_runs(args):
    exe = ROOT / ".venv" / "bin" / "pcapmtu"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pcapmtu.cli"]
    proc = subprocess.run(cmd + args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


START_UP_PROBE = """
import gc, os, sys
from pcapmtu.cli import main
sys.argv = ["pcapmtu", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("collector", gc.isenabled(), gc.get_freeze_count() > 0, os.environ.get("OPENBLAS_NUM_THREADS"), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "--json", str(BLACKHOLE / "container.pcap")],
        ["analyze", "--json", str(BLACKHOLE / "host.pcap"), str(BLACKHOLE / "container.pcap")],
        ["rules"],
    ],
    ids=lambda a: a[0],
)
def test_commands_collect_garbage_again_once_their_libraries_are_loaded(args):
    """The collector rests while a command loads pandas and friends (start-up), then works as usual, with
    the start-up objects frozen out of its sight; numpy's BLAS gets one thread."""
    proc = subprocess.run(
        [sys.executable, "-c", START_UP_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"},
    )
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "collector True True 1"


def test_the_users_blas_threads_and_disabled_collector_are_kept():
    probe = "import gc; gc.disable();" + START_UP_PROBE
    proc = subprocess.run(
        [sys.executable, "-c", probe, "rules"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "2"},
    )
    assert proc.stderr.strip().splitlines()[-1] == "collector False False 2"


def test_analyze_several_containers_and_stated_facts():
    """HOST CONTAINER MORE...: every container capture is paired with the host; stated MTUs are used."""
    result, out = invoke(
        "analyze", "--json", "--host-mtu", "1450", "--container-mtu", "1500",
        BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap", BLACKHOLE / "container.pcap",
    )  # fmt: skip
    assert result.exit_code == 1, out
    doc = json.loads(result.stdout)
    assert [c["role"] for c in doc["captures"]] == ["host", "container", "container2"]
    assert doc["verdict"] == "mtu_blackhole" and doc["path_mtu"] == 1450
    kinds = {s["kind"] for s in doc["path"]["ipv4"]["signals"]}
    assert {"stated_host_mtu", "stated_container_mtu"} <= kinds
    assert {f["capture"] for f in doc["flows"]} >= {"container", "container2"}


def test_single_capture_is_less_certain():
    both, _ = invoke("analyze", "--json", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap")
    alone, _ = invoke("analyze", "--json", "--container", BLACKHOLE / "container.pcap")
    assert json.loads(alone.stdout)["confidence"] < json.loads(both.stdout)["confidence"]


def test_pairing_without_the_handshake(tmp_path):
    """Captures that start mid-connection still pair across NAT by the sequence numbers they saw."""
    c, s, nat = "172.17.0.2", "198.18.0.10", "10.66.0.2"
    mid = [
        (1000.0, B.tcp(c, s, 40000, 443, seq=5000, ack=9000, payload=b"x" * 100)),
        (1000.01, B.tcp(s, c, 443, 40000, seq=9000, ack=5100, payload=b"y" * 200)),
    ]
    natted = [
        (1000.0, B.tcp(nat, s, 33000, 443, seq=5000, ack=9000, payload=b"x" * 100)),
        (1000.01, B.tcp(s, nat, 443, 33000, seq=9000, ack=5100, payload=b"y" * 200)),
    ]
    write_pcap(tmp_path / "c.pcap", [Record(t, B.ether(p)) for t, p in mid])
    write_pcap(tmp_path / "h.pcap", [Record(t, B.ether(p)) for t, p in natted])
    import pcapmtu

    pairs = pcapmtu.analyze(host=tmp_path / "h.pcap", container=tmp_path / "c.pcap").pairs
    assert len(pairs) == 1
    assert pairs.iloc[0]["nat_client"] == "10.66.0.2:33000"
    assert "no handshake" in pairs.iloc[0]["matched_by"]


SERVER_SIDE = SAMPLES / "blackhole_tls13"


def test_analyze_server_capture_alone_by_option_and_by_position():
    """The server's own tcpdump: given with --server, or alone with no role, it is placed at the server and the
    verdict rests on what the client acknowledged, not on what the server sent."""
    for args in (("--server", SERVER_SIDE / "server.pcap"), (SERVER_SIDE / "server.pcap",),
                 ("--capture", SERVER_SIDE / "server.pcap")):  # fmt: skip
        result, out = invoke("analyze", "--json", *args)
        assert result.exit_code == 1, out
        doc = json.loads(result.stdout)
        assert doc["verdict"] == "mtu_blackhole" and doc["path_mtu"] == 1450, out
        assert [(c["role"], c["vantage"]["position"]) for c in doc["captures"]] == [("server", "server")]
        assert bool(doc["role_changes"]) == (args[0] != "--server"), doc["role_changes"]


def test_analyze_swapped_roles_are_said_and_corrected():
    result, out = invoke("analyze", BLACKHOLE / "container.pcap", BLACKHOLE / "host.pcap")
    assert result.exit_code == 1, out
    assert "roles: container.pcap and host.pcap were given the other way round" in result.output, out
    assert "capture host (host.pcap): taken between client and server" in result.output, out
    assert "capture container (container.pcap): taken near the client" in result.output, out


def test_analyze_bracket_when_the_path_mtu_is_not_pinned():
    result, out = invoke("analyze", SAMPLES / "blackhole_upload" / "container.pcap")
    assert result.exit_code == 1, out
    # the upload died at 1500 while downloads of 1500 arrived: only the upper bound holds for the uplink path
    assert "path MTU (IPv4): less than 1500 bytes" in result.output, out
    assert "ping -M do" in result.output, out


def test_analyze_a_role_the_capture_contradicts_is_said():
    result, out = invoke("analyze", "--container", SERVER_SIDE / "server.pcap")
    assert (
        "server.pcap was given as the container capture, but it looks taken at the server" in result.output
    ), out


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((HEALTHY / "host.pcap", HEALTHY / "container.pcap"), 0),
        ((BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap"), 1),
        ((SAMPLES / "filtered_443" / "host.pcap", SAMPLES / "filtered_443" / "container.pcap"), 3),
        ((BLACKHOLE / "container_midstream.pcap",), 3),
        ((BLACKHOLE / "missing.pcap",), 2),
    ],
    ids=["healthy", "mtu_blackhole", "not_mtu", "inconclusive", "bad-input"],
)
def test_analyze_exit_codes_say_what_was_found(args, code):
    """0 healthy, 1 an MTU problem, 3 another problem or inconclusive, 2 bad input (docs/cli.md)."""
    result, out = invoke("analyze", "--quiet", *args)
    assert result.exit_code == code, out


def test_an_internal_error_is_one_line_and_exit_4(monkeypatch):
    import pcapmtu.diagnose.analysis

    def broken(*_args, **_kw):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pcapmtu.diagnose.analysis, "analyze", broken)
    result, out = invoke("analyze", BLACKHOLE / "container.pcap")
    assert result.exit_code == 4, out
    assert "internal error: a bug" in result.output and "Traceback" not in result.output, out


def test_an_80_column_terminal_keeps_tokens_and_commands_whole():
    """What an engineer copies from a narrow terminal is whole: a command or a filter on one line (the terminal
    wraps it, not a newline), and addresses:ports and codes in the table never cut inside."""
    import io

    from rich.console import Console

    import pcapmtu
    from pcapmtu.cli import _print_analysis

    r = pcapmtu.analyze(host=BLACKHOLE / "host.pcap", container=BLACKHOLE / "container.pcap")
    buf = io.StringIO()
    _print_analysis(Console(file=buf, width=80, highlight=False), r)
    lines = buf.getvalue().splitlines()
    for cmd in r.fix.commands:
        assert any(line.strip() == cmd["command"] for line in lines), cmd["command"]
    for f in r.findings_list:
        if f.wireshark_filter:
            assert any(line.strip() == f"wireshark: {f.wireshark_filter}" for line in lines), (
                f.wireshark_filter
            )
    table = "\n".join(lines[next(i for i, line in enumerate(lines) if line.startswith("connections")) :])
    for client in r.verdicts["client"]:
        assert client in table, client


def test_help_names_what_options_take_and_agrees_with_errors():
    """Metavars say what an option takes (FILE, DIR, BYTES), flags have no --no- twin, and the usage line and
    the missing-argument error use the same name."""
    result, out = invoke("analyze", "--help")
    assert result.exit_code == 0, out
    assert "--no-force" not in result.output and "--no-debug" not in result.output, out
    assert "FILE" in result.output and "BYTES" in result.output and "<path>" not in result.output, out
    assert "[CAPTURE]..." in result.output, out
    result, out = invoke("inspect")
    assert result.exit_code == 2 and "CAPTURE" in result.output, out


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("analyze", "--quiet", BLACKHOLE / "container_midstream.pcap"), 3),
        (("analyze", "--quiet", "--json", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap"), 1),
        (("inspect", BLACKHOLE / "container.pcap"), 0),
    ],
    ids=["analyze-inconclusive", "analyze-json-blackhole", "inspect"],
)
def test_a_reader_that_stops_reading_does_not_change_the_exit_code(args, code):
    """`pcapmtu analyze ... | head` exits with what was found, not rich's 1 for a closed pipe (1 means an MTU
    problem) nor a traceback. The pipe is closed before pcapmtu writes anything, so every write fails."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = subprocess.run([sys.executable, "-m", "pcapmtu", *map(str, args)], stdout=write_end,
                          stderr=subprocess.PIPE, text=True, timeout=120, check=False)  # fmt: skip
    os.close(write_end)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr


def test_container_and_server_given_as_host_and_container_are_placed():
    """`pcapmtu analyze container.pcap server.pcap` (the HOST CONTAINER order, with the server's capture): the two
    are swapped, and the far one is called the server's capture, not the docker host's."""
    result, out = invoke("analyze", SERVER_SIDE / "container.pcap", SERVER_SIDE / "server.pcap")
    assert result.exit_code == 1, out
    assert "server.pcap was taken at the server: analysed as the server's capture" in result.output, out
    assert "capture server (server.pcap): taken at the server" in result.output, out
    assert "host capture shows" not in result.output, out


def test_inspect_and_the_report_show_the_same_measures_in_the_same_order(tmp_path):
    """One connection, two views: the same column names in the same order, and the same cells."""
    result, out = invoke("inspect", BLACKHOLE / "container.pcap")
    assert result.exit_code == 0, out
    header = next(line for line in result.output.splitlines() if "MSS c/s" in line)
    names = ["MSS c/s", "max IP c>s / s>c", "retrans", "state"]
    assert [header.index(n) for n in names] == sorted(header.index(n) for n in names)
    row = next(line for line in result.output.splitlines() if ":57056" in line)
    assert "569 / 1252" in row and "closing (S2)" in row  # the client's FIN alone: closing, not open
    result, out = invoke(
        "analyze", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap", "--out", tmp_path / "r"
    )
    html = (tmp_path / "r" / "report.html").read_text()
    heads = [html.index(f"<th>{n.replace('>', '&gt;')}</th>") for n in names]
    assert heads == sorted(heads)
    assert "569 / 1252" in html and "closing (S2)" in html


# ====================================================== the directory rule: analyze --out, export --to
def _snapshot(directory):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.rglob("*") if p.is_file()}


def _analyze_into(out, *extra):
    return invoke("analyze", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap", "--out", out, *extra)


def _export_into(out, *extra, capture=BLACKHOLE / "host.pcap"):
    return invoke("export", capture, "--to", out, "--no-findings", *extra)


WRITERS = {  # command -> (run it into a directory, a file it writes there, its exit code on the demo)
    "analyze": (_analyze_into, "report.md", 1),
    "export": (_export_into, "flows/blackhole_tls12-host.parquet", 0),
}


@pytest.mark.parametrize("command", WRITERS)
def test_out_into_a_directory_that_holds_other_files_needs_no_force(tmp_path, command):
    """The captures' own folder, or one with notes in it, is a fine place for the output (0.4.0's analyze
    refused any non-empty directory); nothing of the user's is touched."""
    run, name, code = WRITERS[command]
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "whiteboard.png").write_bytes(b"\x89PNG mine")
    mine = _snapshot(tmp_path)
    result, out = run(tmp_path)
    assert result.exit_code == code, out
    assert (tmp_path / name).stat().st_size > 0, out
    assert {p: v for p, v in _snapshot(tmp_path).items() if p in mine} == mine


@pytest.mark.parametrize("command", WRITERS)
def test_a_file_pcapmtu_would_replace_needs_force(tmp_path, command):
    """Writing the same output twice: the second run refuses with one line naming a file it would replace
    and exit 2, having written nothing (export replaced files silently in 0.4.0); --force replaces them."""
    run, name, code = WRITERS[command]
    result, out = run(tmp_path)
    assert result.exit_code == code, out
    before = _snapshot(tmp_path)
    result, out = run(tmp_path)
    assert result.exit_code == 2, out
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"pcapmtu: {tmp_path}{os.sep}") and " exists" in line and "--force" in line, line
    assert result.stdout == "", out
    assert _snapshot(tmp_path) == before
    result, out = run(tmp_path, "--force")
    assert result.exit_code == code, out
    assert (tmp_path / name).stat().st_mtime_ns > before[tmp_path / name][1], out


@pytest.mark.parametrize("command", WRITERS)
def test_an_existing_file_named_as_the_directory_is_a_usage_error(tmp_path, command):
    run, _name, _code = WRITERS[command]
    target = tmp_path / "taken"
    target.write_text("mine\n")
    for extra in ((), ("--force",)):
        result, out = run(target, *extra)
        assert result.exit_code == 2, out
        assert (
            result.stderr.strip()
            == f"pcapmtu: {'--out' if command == 'analyze' else '--to'} {target}: exists and is not a directory"
        ), out
        assert target.read_text() == "mine\n"


def test_export_adds_other_captures_to_a_directory_and_takes_out_as_well(tmp_path):
    """A fleet directory is filled over several runs: new captures need no --force."""
    result, out = _export_into(tmp_path)
    assert result.exit_code == 0, out
    result, out = invoke("export", BLACKHOLE / "container.pcap", "--out", tmp_path, "--no-findings")
    assert result.exit_code == 0 and "wrote 4 Parquet files" in result.stdout, out
    assert sorted(p.name for p in (tmp_path / "flows").iterdir()) == [
        "blackhole_tls12-container.parquet",
        "blackhole_tls12-host.parquet",
    ]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("analyze", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap", "--out", "{dir}"), 1),
        (("analyze", HEALTHY / "host.pcap", HEALTHY / "container.pcap"), 0),
        (("export", BLACKHOLE / "host.pcap", "--to", "{dir}", "--no-findings"), 0),
        (("inspect", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap"), 0),
    ],
    ids=["analyze-out", "analyze", "export", "inspect"],
)
def test_quiet_prints_nothing_on_success_and_the_exit_code_tells(tmp_path, args, code):
    """--quiet: no report on the terminal, no 'report:' or 'wrote' line; the files are still written."""
    loud, out = invoke(*[str(a).replace("{dir}", str(tmp_path / "loud")) for a in args])
    assert loud.exit_code == code and loud.stdout.strip(), out
    result, out = invoke(*[str(a).replace("{dir}", str(tmp_path / "quiet")) for a in args], "--quiet")
    assert result.exit_code == code, out
    assert result.stdout == "" and result.stderr == "", out
    loud_files = sorted(p.relative_to(tmp_path / "loud") for p in (tmp_path / "loud").rglob("*"))
    quiet_files = sorted(p.relative_to(tmp_path / "quiet") for p in (tmp_path / "quiet").rglob("*"))
    assert quiet_files == loud_files


def test_quiet_keeps_errors_and_the_json_document(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture")
    result, out = invoke("inspect", "--quiet", bad)
    assert result.exit_code == 2 and "not a capture file" in result.stderr and result.stdout == "", out
    result, out = invoke(
        "analyze", "--quiet", "--json", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap"
    )
    assert result.exit_code == 1 and json.loads(result.stdout)["verdict"] == "mtu_blackhole", out


# ============================================================================== help, usage and errors
def _commands():
    import typer

    group = typer.main.get_command(app)
    return group, dict(group.commands)


COMMANDS = sorted(_commands()[1])


@pytest.mark.parametrize("command", ["", *COMMANDS])
@pytest.mark.parametrize("width", ["80", "200"])
def test_help_shows_no_type_placeholders_and_no_negative_twins(command, width):
    """Every command's --help, at two widths: no `<list[Path]>`, `<bool>`, `<str>` beside an argument, an
    option or --help, no `{CAPTURE}` braces, and no option with a `--no-` twin."""
    import re

    result = CliRunner(env={"COLUMNS": width}).invoke(app, [*([command] if command else []), "--help"])
    text = result.output
    assert result.exit_code == 0 and "Usage: pcapmtu" in text, text
    assert not re.search(r"<[A-Za-z_][\w\[\], |.]*>", text), text
    assert not re.search(r"\{[A-Z_]+\}", text), text
    for negative in re.findall(r"--no-([a-z][\w-]*)", text):
        assert f"--{negative}" not in text.replace(f"--no-{negative}", ""), (negative, text)
    group, commands = _commands()
    params = (commands[command] if command else group).params
    assert not [p.secondary_opts for p in params if getattr(p, "secondary_opts", None)]


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if any(p.param_type_name == "argument" for p in _commands()[1][c].params)]
)
def test_argument_names_agree_in_usage_errors_and_docs(command):
    """The usage line, the missing-argument error and docs/cli.md call an argument by one name."""
    params = [p for p in _commands()[1][command].params if p.param_type_name == "argument"]
    usage = " ".join(
        (p.metavar if p.required else f"[{p.metavar}]") + ("..." if p.nargs != 1 else "") for p in params
    )
    result, out = invoke(command, "--help")
    assert f"Usage: pcapmtu {command} [OPTIONS] {usage}" in result.output, out
    docs = (ROOT / "docs" / "cli.md").read_text()
    assert f"## `pcapmtu {command} {usage}`" in docs
    assert f".SS pcapmtu {command} [OPTIONS] {usage}" in (ROOT / "docs" / "pcapmtu.1").read_text()
    required = [p for p in params if p.required]
    if required:
        result, out = invoke(command)
        assert result.exit_code == 2, out
        assert f"Usage: pcapmtu {command} [OPTIONS] {usage}" in result.output, out
        assert f"Missing argument '{required[0].metavar}'" in result.output, out


# ===================================================================================== shell completion
SHELL_CASES = [  # the line typed before TAB, and what completes it (in sample_pcaps/)
    ("pcapmtu ana", ["analyze"]),
    ("pcapmtu analyze --fo", ["--force"]),
    ("pcapmtu analyze blackhole_tls12/host_s", ["blackhole_tls12/host_shifted.pcap"]),
    (
        "pcapmtu inspect blackhole_tls12/ho",
        ["blackhole_tls12/host.pcap", "blackhole_tls12/host_shifted.pcap"],
    ),
    ("pcapmtu export x.pcap --to fixed_clamp_s", ["fixed_clamp_setmss/"]),
    ("pcapmtu completion f", ["fish"]),
]


def _shell(name):
    import shutil

    require_tool(name)  # a skip here, a failure in CI (.ci/apt-packages.txt installs it)
    exe = shutil.which(name)
    pcapmtu = shutil.which("pcapmtu", path=str(ROOT / ".venv" / "bin")) or shutil.which(
        "pcapmtu", path=os.path.dirname(sys.executable)
    )
    if pcapmtu is None:
        pytest.skip("the pcapmtu console script is not installed (pip install -e .)")
    env = {**os.environ, "PATH": os.path.dirname(pcapmtu) + os.pathsep + os.environ.get("PATH", "")}
    return exe, env


def test_completion_prints_each_script_and_refuses_other_shells():
    from pcapmtu.completion import SCRIPTS

    for shell, script in SCRIPTS.items():
        result, out = invoke("completion", shell)
        assert result.exit_code == 0 and result.stdout == script, out
        assert "_PCAPMTU_COMPLETE=" + shell + "_complete" in script
    result, out = invoke("completion", "tcsh")
    assert result.exit_code == 2 and "SHELL" in result.output, out


BASH_COMPLETE = """
eval "$(pcapmtu completion bash)" || exit 3
complete -p pcapmtu || exit 4
read -ra COMP_WORDS <<< "$1"
[[ $1 == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMPREPLY=()
_pcapmtu_completion pcapmtu
printf '%s\\n' "${COMPREPLY[@]}"
"""


@pytest.mark.parametrize(("line", "expected"), SHELL_CASES, ids=[c[0] for c in SHELL_CASES])
def test_bash_completes_commands_options_and_paths(line, expected):
    """The script sourced in bash; its function called as bash would, with COMP_WORDS and COMP_CWORD set."""
    bash, env = _shell("bash")
    proc = subprocess.run([bash, "--norc", "--noprofile", "-c", BASH_COMPLETE, "bash", line], cwd=SAMPLES,
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "complete -o nosort -F _pcapmtu_completion pcapmtu", proc.stdout
    # bash itself adds the / of a directory (compopt -o filenames)
    assert sorted(proc.stdout.splitlines()[1:]) == [e.rstrip("/") for e in expected], (
        proc.stdout + proc.stderr
    )


def test_bash_completes_a_path_with_a_space(tmp_path):
    """A word reaches pcapmtu as bash holds it, `sp\\ ace/a`; the file comes back whole."""
    bash, env = _shell("bash")
    (tmp_path / "sp ace").mkdir()
    (tmp_path / "sp ace" / "a b.pcap").write_bytes(b"")
    script = (
        'eval "$(pcapmtu completion bash)"; COMP_WORDS=(pcapmtu inspect "sp\\ ace/a"); COMP_CWORD=2; '
        'COMPREPLY=(); _pcapmtu_completion pcapmtu; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    proc = subprocess.run([bash, "--norc", "--noprofile", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.stdout.splitlines() == ["sp ace/a b.pcap"], proc.stdout + proc.stderr


@pytest.mark.parametrize(("line", "expected"), SHELL_CASES, ids=[c[0] for c in SHELL_CASES])
def test_fish_completes_commands_options_and_paths(line, expected):
    """fish's own completion engine (`complete -C`) with the script loaded."""
    fish, env = _shell("fish")
    script = f"pcapmtu completion fish | source; complete -C {json.dumps(line)}"
    proc = subprocess.run([fish, "--no-config", "-c", script], cwd=SAMPLES, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(c.split("\t")[0] for c in proc.stdout.splitlines()) == expected, proc.stdout + proc.stderr


ZSH_LOADS = """
autoload -Uz compinit && compinit -u -D
eval "$(pcapmtu completion zsh)" || exit 3
print -r -- "$_comps[pcapmtu] $(whence -w _pcapmtu_completion)"
"""

# zsh completes only inside its line editor: type the line and TAB in an interactive zsh on a pseudo-terminal
ZSH_TYPE_TAB = """
setopt extendedglob
zmodload zsh/zpty || exit 3
zpty z 'zsh -f -i'
zpty -w z "$3"'; PS1="ready> "'
sleep 1
while zpty -r -t z chunk; do :; done
zpty -w -n z "$1"$'\\t'
all=""
for i in {1..50}; do
  while zpty -r -t z chunk; do all+=$chunk; done
  plain=${all//$'\\e'\\[[0-9;?]#[A-Za-z]/}  # without the terminal's colour and mode sequences
  [[ $plain == *"$2"* ]] && break
  sleep 0.2
done
zpty -d z
print -r -- "$plain"
"""


def test_zsh_loads_the_script_and_the_protocol_answers():
    zsh, env = _shell("zsh")
    proc = subprocess.run([zsh, "-f", "-c", ZSH_LOADS], cwd=SAMPLES, env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.strip() == "_pcapmtu_completion _pcapmtu_completion: function", proc.stdout
    for words, cword, answer in (("pcapmtu ana", "1", ["plain", "analyze"]),
                                 ("pcapmtu analyze blackhole_tls12/ho", "2", ["file", "blackhole_tls12/ho", "_"]),
                                 ("pcapmtu analyze --out fix", "3", ["dir", "fix", "_"])):  # fmt: skip
        proc = subprocess.run(["pcapmtu"], env={**env, "_PCAPMTU_COMPLETE": "zsh_complete", "COMP_WORDS": words,
                              "COMP_CWORD": cword}, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[: len(answer)] == answer and len(lines) % 3 == 0, proc.stdout


@pytest.mark.parametrize(
    ("line", "expected"),
    [c for c in SHELL_CASES if len(c[1]) == 1],  # one candidate: TAB writes it into the line
    ids=[c[0] for c in SHELL_CASES if len(c[1]) == 1],
)
def test_zsh_completes_commands_options_and_paths_on_tab(line, expected):
    zsh, env = _shell("zsh")
    setup = 'autoload -Uz compinit; compinit -u -D; eval "$(pcapmtu completion zsh)"'
    proc = subprocess.run([zsh, "-f", "-c", ZSH_TYPE_TAB, "zsh", line, expected[0], setup], cwd=SAMPLES, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert expected[0] in proc.stdout, proc.stdout[-2000:] + proc.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_documented_install_line_works_in_a_new_shell(tmp_path, shell):
    """The 'once' install line of docs/cli.md, run in an empty home; then a new shell completes
    `pcapmtu ana` without being told where the script is (bash-completion, zsh's fpath, fish: on demand)."""
    from pcapmtu.completion import INSTALL

    exe, env = _shell(shell)
    env = {k: v for k, v in env.items() if not k.startswith("XDG_")} | {"HOME": str(tmp_path)}
    command, _where = INSTALL[shell][-1]
    subprocess.run(["sh", "-c", command], env=env, check=True, timeout=60)
    if shell == "bash":
        loader = "/usr/share/bash-completion/bash_completion"
        if not os.path.exists(loader):
            require_tool("bash-completion (its /usr/share/bash-completion/bash_completion)")
        script = f"source {loader}; _completion_loader pcapmtu; " + BASH_COMPLETE.split("\n", 2)[2]
        proc = subprocess.run([exe, "--norc", "--noprofile", "-c", script, "bash", "pcapmtu ana"], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert proc.stdout.splitlines()[1:] == ["analyze"], proc.stdout + proc.stderr
    elif shell == "zsh":
        setup = "fpath=(~/.zfunc $fpath); autoload -Uz compinit; compinit -u -D"
        proc = subprocess.run([exe, "-f", "-c", ZSH_TYPE_TAB, "zsh", "pcapmtu ana", "analyze", setup], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert "pcapmtu analyze" in proc.stdout, proc.stdout[-2000:] + proc.stderr
    else:
        proc = subprocess.run([exe, "-c", "complete -C 'pcapmtu ana'"], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert [c.split("\t")[0] for c in proc.stdout.splitlines()] == ["analyze"], proc.stdout + proc.stderr


def test_bad_completion_request_is_a_usage_error():
    _bash, env = _shell("bash")
    proc = subprocess.run(["pcapmtu"], env={**env, "_PCAPMTU_COMPLETE": "tcsh_complete"}, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == "" and "expected bash, zsh or fish" in proc.stderr


# ============================================================================================ man page
def test_the_man_page_is_generated_from_the_command_line():
    from pcapmtu import clidoc

    committed = (ROOT / "docs" / "pcapmtu.1").read_text()
    assert committed == clidoc.man(), (
        "docs/pcapmtu.1 is stale: python -m pcapmtu.clidoc --man > docs/pcapmtu.1"
    )
    for name in COMMANDS:
        assert f".SS pcapmtu {name} [OPTIONS]" in committed, name


def test_the_man_page_renders_without_warnings():
    """man (or groff, which man runs) formats docs/pcapmtu.1 with every warning on, and says nothing."""
    import shutil

    page = ROOT / "docs" / "pcapmtu.1"
    env = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8"}
    if shutil.which("man"):
        cmd = ["man", "--warnings=w", "-l", str(page)]
    else:
        require_tool("groff")  # a skip here, a failure in CI (man-db and groff-base: .ci/apt-packages.txt)
        cmd = ["groff", "-man", "-Tutf8", "-ww", "-P-cbou", str(page)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    text = proc.stdout
    for expected in ("NAME", "pcapmtu - find MTU/MSS black holes", "EXIT STATUS", "SHELL COMPLETION",
                     "--out DIR", "--force", 'eval "$(pcapmtu completion bash)"'):  # fmt: skip
        assert expected in text, expected  # ASCII dashes: options paste into a shell as they read
    # every option of every command is in it
    for command in _commands()[1].values():
        for param in command.params:
            for name in getattr(param, "opts", []):
                assert name in text, name


def test_the_fix_is_one_recommendation_then_alternatives_with_when_to_choose_each(tmp_path):
    result, out = invoke("analyze", BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap", "--out", tmp_path)
    text = result.output
    rec, alt = text.index("  recommended:"), text.index("  alternatives (")
    assert (
        rec
        < text.index("--set-mss 1410")
        < alt
        < text.index("nft add table")
        < text.index("dockerd --default")
    )
    fix = json.loads((tmp_path / "report.json").read_text())["fix"]
    choices = [c["choice"] for c in fix["commands"]]
    assert choices[0] == "recommended" and "alternative" in choices
    assert choices == sorted(choices, key=["recommended", "alternative"].index)  # never interleaved
    assert all(c["when"] for c in fix["commands"] if c["choice"] == "alternative" and "then" not in c["what"])
    html = (tmp_path / "report.html").read_text()
    folded = html[html.index("<details><summary>Alternatives") : html.index("</details>")]
    assert "nft add table" in folded and "--set-mss 1410" not in folded


def test_ctrl_c_is_exit_130_with_one_line(tmp_path):
    """Ctrl-C (SIGINT) mid-run: exit 130, as shells report it (never 1, which says an MTU problem was found),
    and `pcapmtu: interrupted` as the one line on stderr, no traceback; a scan ends its workers at once."""
    import signal
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pcapmtu",
            "scan",
            str(SAMPLES),
            "--workers",
            "1",
            "--out",
            str(tmp_path / "s"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's foreground job
    )
    time.sleep(3)
    assert proc.poll() is None, "the scan ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent < 5, "the groups in flight are dropped at once, not finished first"
    assert stderr.strip().splitlines()[-1] == "pcapmtu: interrupted" and "Traceback" not in stderr
