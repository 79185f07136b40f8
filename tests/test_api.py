"""The public Python surface is a contract: `__all__` changes only with a version bump."""

from __future__ import annotations

import pytest

import pcapmtu

PUBLIC = [
    "Analysis",
    "Capture",
    "CaptureError",
    "KnownFacts",
    "PcapmtuError",
    "Reason",
    "Thresholds",
    "UsageError",
    "Vantage",
    "Verdict",
    "__version__",
    "analyze",
    "export",
    "read",
]


def test_public_surface_is_exactly_documented():
    assert sorted(pcapmtu.__all__) == sorted(PUBLIC), "update PUBLIC, docs and the version together"
    for name in PUBLIC:
        assert hasattr(pcapmtu, name), name


def test_names_are_the_documented_objects_whatever_was_imported_first():
    """`import pcapmtu` is lazy; importing the modules behind the names must not shadow them."""
    import subprocess
    import sys

    code = (
        "import pcapmtu.render.parquet, pcapmtu.cli, pcapmtu.diagnose.analysis, pcapmtu.ingest.capture, sys, pcapmtu\n"
        "assert callable(pcapmtu.export) and pcapmtu.export.__module__ == 'pcapmtu.render.parquet'\n"
        "assert callable(pcapmtu.analyze) and callable(pcapmtu.read)\n"
        "assert isinstance(pcapmtu.Capture, type) and issubclass(pcapmtu.CaptureError, pcapmtu.PcapmtuError)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    light = "import sys, pcapmtu; assert 'pandas' not in sys.modules; print(pcapmtu.__version__)"
    assert subprocess.run([sys.executable, "-c", light], check=True, capture_output=True, text=True).stdout


def test_read_reports_progress_up_to_the_file_size(tmp_path):
    from support.environment import SAMPLES

    path = SAMPLES / "lossy_link" / "container.pcap"
    seen: list[tuple[int, int]] = []
    pcapmtu.read(path, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (path.stat().st_size, path.stat().st_size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_cli_progress_only_on_a_terminal():
    """Piped output carries no progress bar (it would corrupt logs and --json)."""
    import subprocess
    import sys

    from support.environment import SAMPLES

    d = SAMPLES / "blackhole_tls12"
    proc = subprocess.run(
        [sys.executable, "-m", "pcapmtu", "analyze", str(d / "host.pcap"), str(d / "container.pcap")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "reading" not in proc.stderr and "\r" not in proc.stderr
    piped = subprocess.run(
        [sys.executable, "-m", "pcapmtu", "inspect", str(d / "container.pcap")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert piped.returncode == 0 and piped.stderr == ""


@pytest.mark.parametrize("command", ["inspect", "analyze"])
def test_cli_progress_on_a_terminal(command):
    """On a terminal (stderr is a tty) the capture being read is shown with a progress bar."""
    import os
    import pty
    import subprocess
    import sys

    from support.environment import SAMPLES

    path = SAMPLES / "lossy_link" / "container.pcap"
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pcapmtu", command, str(path)],
            stdout=subprocess.DEVNULL, stderr=follower, timeout=120, env={**os.environ, "COLUMNS": "120"},
        )  # fmt: skip
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert proc.returncode in (0, 1, 3)  # healthy, MTU problem, another problem
    assert f"reading {path.name}" in shown.decode(errors="replace") or "reading" in shown.decode(
        errors="replace"
    )


def test_read_leaves_the_garbage_collector_as_it_found_it():
    import gc

    from support.environment import SAMPLES

    path = SAMPLES / "blackhole_tls12" / "container.pcap"
    assert gc.isenabled()
    pcapmtu.read(path)
    assert gc.isenabled()
    gc.disable()
    try:
        pcapmtu.read(path)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(pcapmtu.CaptureError):
        pcapmtu.read(path.with_name("missing.pcap"))
    assert gc.isenabled()


def test_reprs_are_summaries_not_table_dumps():
    """In a notebook `cap` or `result` alone shows what it is in a line (or a small HTML table), not every
    DataFrame; capture text in the HTML is escaped."""
    from support.environment import SAMPLES

    cap = pcapmtu.read(SAMPLES / "blackhole_tls12" / "container.pcap")
    text = repr(cap)
    assert (
        text.startswith("Capture('container.pcap', pcap, 39 packets") and "\n" not in text and len(text) < 300
    )
    html = cap._repr_html_()
    assert "<table>" in html and "tcp_connections" in html and "DataFrame" in html and len(html) < 3000
    # times as a person reads them: UTC, to the capture's resolution
    assert (
        "<th style='text-align:left'>first_time</th><td style='text-align:left'>2026-12-01T23:01:36.836218+00:00"
        in html
    )
    assert "first_ts" not in html and "9.996772 s" in html
    result = pcapmtu.analyze(container=cap)
    assert repr(result).startswith("Analysis(mtu_blackhole, confidence") and len(repr(result)) < 300


def test_analysis_html_repr_is_a_short_summary(tmp_path):
    """`result` in Jupyter: verdict, explanation, fix, one row per capture and the findings counted; no table
    of findings, flows or packets (those are one attribute away), and file names from the user escaped."""
    import shutil

    from support.environment import SAMPLES

    odd = tmp_path / "<b>host<i>.pcap"
    shutil.copy(SAMPLES / "blackhole_tls12" / "host.pcap", odd)
    result = pcapmtu.analyze(host=odd, container=SAMPLES / "blackhole_tls12" / "container.pcap")
    html = result._repr_html_()
    assert html.startswith("<div><p><b>pcapmtu: mtu_blackhole</b>, confidence ") and "path MTU 1450" in html
    assert "<b>Fix:</b> Clamp the TCP MSS to 1410" in html
    assert html.count("<table>") == 1 and html.count("<tr>") == 1 + len(result.captures)
    assert "&lt;b&gt;host&lt;i&gt;.pcap" in html and "<b>host" not in html
    counts = result.findings["severity"].value_counts()
    assert f"findings: {counts['error']} error, {counts['warning']} warning, {counts['info']} info;" in html
    assert "2026-12-01T23:01:36.836218+00:00" in html  # the container capture's first packet, UTC
    assert 'class="dataframe"' not in html and "wireshark_filter" not in html and len(html) < 6000
    assert len(html) < len(result.findings.to_html())  # not a dump of the findings table
