"""The read budget (issue 16): a capture, or a decompression bomb, over --max-packets / --max-memory stops
early with one line and exit code 2; captures under it read exactly as before.

The bombs are generated here (support/bomb.py): 10 million zero-length records, ~310 KB of gzip or ~16 KB of
zstd, 160 MB decompressed; `analyze` reading all of it peaks at ~2.2 GB.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
import time

import pytest
from typer.testing import CliRunner

import pcapmtu
from pcapmtu.cli import app
from pcapmtu.errors import TooBig
from pcapmtu.ingest import budget
from support.bomb import write_bomb
from support.environment import SAMPLES

BOMB_RECORDS = 10_000_000
BLACKHOLE = SAMPLES / "blackhole_tls12"
HOST, CONTAINER = BLACKHOLE / "host.pcap", BLACKHOLE / "container.pcap"


def _packets(path) -> int:
    return pcapmtu.read(path, keep_packets=False).stats.packets


def _run_measured(*args: str) -> tuple[subprocess.CompletedProcess, float, int]:
    """`python -m pcapmtu ARGS` in a fresh parent, so its peak RSS (KiB) is this command's alone."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "p = subprocess.run([sys.executable, '-m', 'pcapmtu', *sys.argv[1:]], capture_output=True, text=True)\n"
        "sys.stderr.write(p.stderr)\n"
        "print(p.returncode, time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, timeout=120, check=True
    )
    code, seconds, rss_kib = proc.stdout.split()
    return subprocess.CompletedProcess(args, int(code), "", proc.stderr), float(seconds), int(rss_kib)


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcapmtu: "), stderr
    return lines[0]


# ------------------------------------------------------------------------------------------------- bombs
@pytest.mark.parametrize("codec", ["gzip", "zstd"])
@pytest.mark.parametrize("command", ["analyze", "inspect"])
def test_a_decompression_bomb_stops_early(tmp_path, codec, command):
    bomb = tmp_path / f"bomb.pcap.{'gz' if codec == 'gzip' else 'zst'}"
    decompressed = write_bomb(bomb, BOMB_RECORDS, codec)
    assert bomb.stat().st_size < 400_000 and decompressed == 16 * BOMB_RECORDS + 24
    proc, seconds, rss_kib = _run_measured(command, str(bomb), "--max-memory", "200M")
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    # the first batch (16 MiB of the file: 1,048,576 records) crosses the limit the 200 MiB hold
    per_packet = budget.BYTES_PER_PACKET if command == "analyze" else budget.BYTES_PER_LEAN_PACKET
    limit = 200 * 2**20 // per_packet
    assert line == (
        f"pcapmtu: {bomb}: stopped reading after {(limit // 2**20 + 1) * 2**20:,} packets: more than the limit "
        f"of {limit:,} packets (what --max-memory 200 MiB holds at {per_packet} bytes a packet); raise it "
        "with --max-memory SIZE or --max-packets N (0: no limit)"
    )
    # reading all of it takes `analyze` ~2.2 GB (~210 bytes a packet); stopped, a few hundred MB at most,
    # most of it the interpreter and its libraries (~130 MB) and one batch (analyze: ~210 MB in all)
    assert rss_kib < 500 * 1024, rss_kib
    assert seconds < 30, seconds


def test_the_default_budget_stops_a_bomb(tmp_path, monkeypatch):
    """With no limits given, the machine's available memory decides (here: as if 400 MiB were available)."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: 8000000 kB\nMemFree: 1 kB\nMemAvailable: {400 * 1024} kB\n")
    monkeypatch.setattr(budget, "MEMINFO", str(meminfo))
    bomb = tmp_path / "bomb.pcap.gz"
    write_bomb(bomb, 4_000_000)
    start = time.monotonic()
    with pytest.raises(TooBig) as caught:
        pcapmtu.read(bomb)
    assert time.monotonic() - start < 20
    limit = 300 * 2**20 // budget.BYTES_PER_PACKET
    assert str(caught.value) == (
        f"{bomb}: stopped reading after 1,048,576 packets: more than the limit of {limit:,} packets (what 3/4 "
        "of the available memory, 300 MiB holds at 400 bytes a packet); raise it with --max-memory SIZE or "
        "--max-packets N (0: no limit)"
    )


# ------------------------------------------------------------------------------- under the budget, as before
def test_a_capture_under_the_budget_reads_as_before():
    args = ["analyze", "--json", str(HOST), str(CONTAINER)]
    before = CliRunner().invoke(app, args)
    total = _packets(HOST) + _packets(CONTAINER)
    within = CliRunner().invoke(app, [*args, "--max-packets", str(total), "--max-memory", "1G"])
    assert before.exit_code == within.exit_code == 1, (before.stderr, within.stderr)
    assert json.loads(within.stdout) == json.loads(before.stdout)
    assert within.stdout == before.stdout and within.stderr == before.stderr == ""
    inspect = ["inspect", "--json", str(CONTAINER)]
    assert CliRunner().invoke(app, [*inspect, "--max-packets", "0", "--max-memory", "0"]).stdout == (
        CliRunner().invoke(app, inspect).stdout
    )


# ------------------------------------------------------------------------------------------- the boundary
@pytest.mark.parametrize("command", ["inspect", "export"])
def test_max_packets_boundary_per_capture(tmp_path, command):
    n = _packets(CONTAINER)
    extra = ["--to", str(tmp_path / "out"), "--no-findings", "--force"] if command == "export" else []
    ok = CliRunner().invoke(app, [command, str(CONTAINER), "--max-packets", str(n), *extra])
    assert ok.exit_code == 0, ok.stderr
    over = CliRunner().invoke(app, [command, str(CONTAINER), "--max-packets", str(n - 1), *extra])
    assert over.exit_code == 2
    assert _one_line(over.stderr) == (
        f"pcapmtu: {CONTAINER}: stopped reading after {n:,} packets: more than the limit of {n - 1:,} packets "
        "(--max-packets); raise it with --max-packets N (0: no limit)"
    )


def test_max_packets_boundary_is_for_all_captures_of_analyze():
    host, container = _packets(HOST), _packets(CONTAINER)
    args = ["analyze", str(HOST), str(CONTAINER), "--max-packets"]
    assert CliRunner().invoke(app, [*args, str(host + container)]).exit_code == 1  # the MTU problem it is
    over = CliRunner().invoke(app, [*args, str(host + container - 1)])
    assert over.exit_code == 2
    assert _one_line(over.stderr) == (
        f"pcapmtu: {CONTAINER}: stopped reading after {container:,} packets ({host + container:,} with the "
        f"captures read before it): more than the limit of {host + container - 1:,} packets (--max-packets); "
        "raise it with --max-packets N (0: no limit)"
    )


def test_max_memory_names_the_estimate():
    n = _packets(CONTAINER)
    result = CliRunner().invoke(app, ["analyze", str(CONTAINER), "--max-packets", "0", "--max-memory", "10K"])
    assert result.exit_code == 2
    line = _one_line(result.stderr)
    assert line.startswith(
        f"pcapmtu: {CONTAINER}: stopped reading after {n:,} packets: its tables would take "
    )
    assert line.endswith(
        "more than the limit of --max-memory 10.0 KiB; raise it with --max-memory SIZE, e.g. 32G (0: no limit)"
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--max-packets", "-1", "pcapmtu: --max-packets -1: a number of packets, 0 for no limit"),
        (
            "--max-memory",
            "8X",
            "pcapmtu: --max-memory: not a size: '8X' (bytes, or with K, M, G or T: 8G, 512M)",
        ),
    ],
)
def test_wrong_limits_are_one_line(option, value, message):
    result = CliRunner().invoke(app, ["inspect", str(CONTAINER), option, value])
    assert result.exit_code == 2 and _one_line(result.stderr) == message


# ------------------------------------------------------------------------------------------- the Python API
def test_api_keywords():
    n = _packets(CONTAINER)
    assert pcapmtu.read(CONTAINER, max_packets=n).stats.packets == n
    assert pcapmtu.read(CONTAINER, max_packets=0, max_memory=0).stats.packets == n
    with pytest.raises(pcapmtu.CaptureError, match=f"stopped reading after {n:,} packets"):
        pcapmtu.read(CONTAINER, max_packets=n - 1)
    with pytest.raises(TooBig, match="its tables would take"):
        pcapmtu.read(CONTAINER, max_packets=0, max_memory="1K")
    with pytest.raises(pcapmtu.UsageError):
        pcapmtu.read(CONTAINER, max_packets=-1)
    host = _packets(HOST)
    assert pcapmtu.analyze(HOST, CONTAINER, max_packets=host + n).verdict == pcapmtu.Verdict.MTU_BLACKHOLE
    with pytest.raises(TooBig, match="with the captures read before it"):
        pcapmtu.analyze(HOST, CONTAINER, max_packets=host + n - 1)
    read_already = pcapmtu.read(HOST)  # a Capture given to analyze() was read under its own budget
    assert pcapmtu.analyze(read_already, CONTAINER, max_packets=n).verdict == pcapmtu.Verdict.MTU_BLACKHOLE


def test_api_export_keyword(tmp_path):
    from pcapmtu.render.parquet import PartialExport

    n = _packets(CONTAINER)
    assert len(pcapmtu.export([CONTAINER], tmp_path / "a", findings=False, max_packets=n)) == 4
    with pytest.raises(PartialExport, match="more than the limit") as caught:
        pcapmtu.export([CONTAINER, HOST], tmp_path / "b", findings=False, max_packets=n - 1)
    assert len(caught.value.failed) == 2 and caught.value.written == []


# ------------------------------------------------------------------------------------------- the defaults
def test_default_limits_follow_the_available_memory(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684084 kB\nMemFree:  1 kB\nMemAvailable:   16000000 kB\n")
    monkeypatch.setattr(budget, "MEMINFO", str(meminfo))
    memory = 16_000_000 * 1024 * 3 // 4
    assert budget.available_memory() == 16_000_000 * 1024
    b = budget.ReadBudget()
    assert b.memory_limit == budget.default_max_memory() == memory
    assert b.packet_limit(keep_packets=True) == memory // 400
    assert b.packet_limit(keep_packets=False) == memory // 200
    assert budget.ReadBudget(max_memory="1G").packet_limit(True) == 2**30 // 400  # follows --max-memory
    assert budget.ReadBudget(max_packets=7).packet_limit(True) == 7
    assert budget.ReadBudget(max_memory=0).packet_limit(True) == 0  # no limit at all


def test_default_without_meminfo_uses_sysconf_or_no_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "MEMINFO", str(tmp_path / "absent"))
    pages = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(budget.os, "sysconf", lambda name: pages[name])
    assert budget.default_max_memory() == 4096 * 1000 * 3 // 4

    def unknown(name):
        raise ValueError(name)

    monkeypatch.setattr(budget.os, "sysconf", unknown)
    assert budget.default_max_memory() == 0 and budget.ReadBudget().packet_limit(True) == 0


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("100000", 100000), ("8G", 8 << 30), ("512m", 512 << 20), ("1.5GiB", 3 << 29), ("64KB", 64 << 10),
     ("2T", 2 << 40), (4096, 4096)],
)  # fmt: skip
def test_parse_size(text, size):
    assert budget.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "-1", "8X", "1e9", -5])
def test_parse_size_refuses(text):
    with pytest.raises(pcapmtu.UsageError):
        budget.parse_size(text)


# ------------------------------------------------------------------------------ the decompressed copy
def test_decompression_stops_before_the_temporary_copy_fills_its_disk(tmp_path, monkeypatch):
    """The limits bound memory; the temporary decompressed copy is bounded by its disk's free space."""
    import shutil
    from collections import namedtuple

    from pcapmtu.ingest.formats import open as capture_open

    bomb = tmp_path / "bomb.pcap.gz"
    write_bomb(bomb, 1_000_000)  # 16 MB decompressed
    usage = namedtuple("usage", "total used free")
    looked = []

    def nearly_full(path):
        looked.append(path)
        return usage(100 << 30, 99 << 30, (5 << 30) - 1)  # just under 5 % of the disk free

    monkeypatch.setattr(capture_open, "DISK_CHECK_BYTES", 4 << 20)
    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    result = CliRunner().invoke(app, ["inspect", str(bomb)])
    assert result.exit_code == 2, result.output
    line = _one_line(result.stderr)
    assert "decompressing it would fill the disk" in line and "TMPDIR" in line, line
    assert looked and all(str(p).startswith(tempfile.gettempdir()) for p in looked)
    assert not any(pathlib.Path(p).exists() for p in looked)  # the partial copy is removed
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100 << 30, 90 << 30, 10 << 30))
    assert _packets(bomb) == 1_000_000  # with room it reads as before
