"""Two captures of one incident are rarely stopped at the same moment. What one capture saw after the other
stopped was neither lost between them (X002) nor a sign that the connection was fine: a connection the
container's capture ended on while it went on is judged on the far side, where it is whole (0.9.7)."""

from __future__ import annotations

from pathlib import Path

import pytest

import pcapmtu
from support.cuts import frames_of
from support.environment import SAMPLES


def _stopped(tmp_path: Path, scenario: str, role: str, fraction: float, far: str = "host"):
    """The scenario's pair with `role`'s capture stopped after `fraction` of its frames."""
    d = SAMPLES / scenario
    frames = frames_of(d / f"{role}.pcap")
    cut = frames.write(tmp_path / f"{role}.pcap", stop=int(len(frames.frames) * fraction))
    inputs = {"container": d / "container.pcap", far: d / f"{far}.pcap", role: cut}
    return pcapmtu.analyze(**inputs)


def test_a_container_capture_stopped_before_the_hang_is_not_healthy(tmp_path):
    """blackhole_tls12's container capture stopped at frame 19: the TLS connection had sent its ClientHello
    and nothing had hung yet. The host capture, which ran on, shows the black hole (B001). 0.9.6 called the
    pair healthy with confidence 0.7: the connection was judged on the container side alone."""
    r = _stopped(tmp_path, "blackhole_tls12", "container", 19 / 39)
    assert (r.verdict, r.confidence >= 0.9) == ("mtu_blackhole", True), (
        r.verdict,
        r.confidence,
        r.explanation,
    )
    b001 = [f for f in r.findings_list if f.code == "B001"]
    assert [f.capture for f in b001] == ["host"]
    v = r.verdicts
    tls = v[v["server"] == "198.18.0.11:443"]
    assert "healthy" not in set(tls.loc[tls["host_conn"] == b001[0].conn, "verdict"])
    judged = tls[(tls["capture"] == "host") & (tls["conn"] == b001[0].conn)]
    assert judged["verdict"].tolist() == ["mtu_blackhole"]
    # and that connection is judged once: not also as the container's
    pair = r.pairs[r.pairs["host_conn"] == b001[0].conn]
    assert len(pair) == 1
    assert not ((v["capture"] == "container") & (v["conn"] == int(pair["container_conn"].iloc[0]))).any()


def test_the_whole_pair_is_judged_on_the_container_side_as_before():
    d = SAMPLES / "blackhole_tls12"
    r = pcapmtu.analyze(host=d / "host.pcap", container=d / "container.pcap")
    assert r.verdict == "mtu_blackhole"
    assert set(r.verdicts.loc[r.verdicts["host_conn"] >= 0, "capture"]) == {"container"}
    assert not r.context.flows("container")["view_cut"].any()


@pytest.mark.parametrize(
    ("scenario", "fraction"),
    [
        ("blackhole_recovered", 0.3),
        ("blackhole_recovered", 0.7),
        ("blackhole_recovered", 0.9),
        ("lossy_link", 0.5),
        ("lossy_link", 0.7),
        ("slow_server", 0.9),
    ],
)
def test_what_the_host_saw_after_the_container_capture_stopped_was_not_lost_between(
    tmp_path, scenario, fraction
):
    """The container's own ACKs, in the host capture after the container capture's last packet and missing
    from it, show that capture had stopped: the server's segments the host saw then were not lost between
    the two points (0.9.6 reported up to 155 of them as X002, "lost inside the docker host")."""
    r = _stopped(tmp_path, scenario, "container", fraction)
    assert not [f.message for f in r.findings_list if f.code == "X002"]


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
def test_what_the_container_saw_after_the_host_capture_stopped_was_not_lost_between(tmp_path, fraction):
    r = _stopped(tmp_path, "slow_server", "host", fraction)
    assert not [f.message for f in r.findings_list if f.code == "X002"]


def test_a_far_capture_that_fell_silent_still_shows_the_loss():
    """The server capture of blackhole_upload holds nothing after the handshake: the client's big segments
    never arrived. Silence is not a stop (nothing sent from the server's side is missing from it), so the
    segments the container sent then are still reported as lost between the two points."""
    d = SAMPLES / "blackhole_upload"
    r = pcapmtu.analyze(container=d / "container.pcap", server=d / "server.pcap")
    x002 = [f for f in r.findings_list if f.code == "X002"]
    assert x002 and all(f.capture == "container" for f in x002)
