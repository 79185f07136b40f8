"""The memory-saving read paths give exactly the results of the plain one.

`inspect` reads with `keep_packets=False` (only what flows, dns and icmp need; consumed columns dropped
early), the reader fills columns batch by batch, and TCP interns 5-tuples and analyses connections in
blocks. Each of these must be invisible in the results, so each is compared with the plain read on real
captures, with chunk and block sizes small enough to cut every capture into many pieces.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pcapmtu.ingest import capture, formats, tcp
from pcapmtu.render.jsondoc import inspect_json
from support.environment import SAMPLES, corpus_files

CAPTURES = sorted(p for p in SAMPLES.glob("*/*.pcap*")) + corpus_files("semantic", "format")


def _tables(cap: capture.Capture) -> dict:
    return {"flows": cap.flows, "dns": cap.dns, "icmp": cap.icmp, "summary": cap.summary()}


def _assert_same(a: dict, b: dict) -> None:
    assert a["summary"] == b["summary"]
    for name in ("flows", "dns", "icmp"):
        pd.testing.assert_frame_equal(a[name], b[name], check_dtype=True, obj=name)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_lean_read_gives_the_same_tables(path: Path, monkeypatch):
    try:
        full = capture.read(path)
    except capture.CaptureError:
        pytest.skip("not readable either way")
    expected = _tables(full)
    lean = capture.read(path, keep_packets=False)
    _assert_same(_tables(lean), expected)
    assert lean.packets.empty
    # many small batches (column store growth, stats across batches, renumbered DNS/SACK rows) and tiny
    # interning blocks and analysis slices: still the same tables, and the same per-packet columns
    monkeypatch.setattr(formats, "CHUNK_BYTES", 4096)
    small = tcp.TcpConfig(slice_rows=64, block_rows=50)
    _assert_same(_tables(capture.read(path, small, keep_packets=False)), expected)
    pieces = capture.read(path, small)
    _assert_same(_tables(pieces), expected)
    pd.testing.assert_frame_equal(pieces.packets, full.packets, check_categorical=False)  # same values;
    # address categories are numbered in order of appearance per batch, so their order may differ


def test_a_lean_capture_is_refused_where_packets_are_needed(tmp_path):
    import pcapmtu

    lean = capture.read(SAMPLES / "blackhole_tls12" / "container.pcap", keep_packets=False)
    with pytest.raises(pcapmtu.UsageError, match="keep_packets=False"):
        pcapmtu.analyze(container=lean)
    with pytest.raises(pcapmtu.UsageError, match="keep_packets=False"):
        pcapmtu.export([lean], to=tmp_path)


def test_timestamps_going_back_across_batches_are_counted(tmp_path, monkeypatch):
    from support import packets as B
    from support.pcapwriter import write_pcap

    frames = [
        B.ether(B.tcp("10.66.0.2", "10.66.0.1", 40000, 80, seq=i, payload=b"x" * 900)) for i in range(12)
    ]
    times = [10, 11, 12, 13, 5, 14, 15, 16, 17, 18, 19, 1]  # two steps back
    path = tmp_path / "back.pcap"
    write_pcap(path, list(zip(times, frames, strict=True)))
    monkeypatch.setattr(formats, "CHUNK_BYTES", 1024)  # about one packet per batch
    cap = capture.read(path, keep_packets=False)
    assert cap.stats.backwards == 2
    assert cap.time_span == (1.0, 19.0)
    assert any("2 packet(s) have a timestamp earlier" in w for w in cap.warnings)


def test_command_line_inspect_matches_the_library():
    """The CLI leaves pyarrow unloaded (Python strings in pandas); its JSON must not change for that."""
    paths = [str(p) for p in sorted(SAMPLES.glob("*/container.pcap*"))[:6]]
    run = subprocess.run(
        [sys.executable, "-m", "pcapmtu", "inspect", "--json", *paths],
        capture_output=True,
        text=True,
        check=True,
    )
    library = inspect_json([capture.read(p, keep_packets=False) for p in paths])
    assert json.loads(run.stdout) == json.loads(library)
