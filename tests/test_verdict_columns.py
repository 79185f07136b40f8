"""verdicts() judges column by column; the table is the one a judgement per connection gives (the rule as it
reads: _judge on each connection's row with its own and its twin's findings, endpoint() and service())."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

import pcapmtu
from pcapmtu.diagnose import verdicts as verdicts_mod
from pcapmtu.diagnose.context import records
from pcapmtu.evidence import endpoint, endpoints, service, services
from support.environment import SAMPLES, corpus_files


def _row_by_row(ctx, findings) -> pd.DataFrame:
    by_flow: dict = {}
    for f in findings:
        if f.conn >= 0:
            by_flow.setdefault((f.capture, f.conn), []).append(f)
    rows = []
    for role in ctx.container_roles + ctx.extra_roles + ([ctx.far_role] if ctx.far_role else []):
        for flow in records(ctx.judged(role)):
            own = by_flow.get((role, int(flow.conn)), [])
            twin = (
                by_flow.get((ctx.far_role, int(flow.twin_conn)), [])
                if role != ctx.far_role and flow.twin_conn >= 0
                else []
            )
            verdict, reason, codes = verdicts_mod._judge(flow, own + twin, ctx)
            rows.append(
                (
                    role,
                    int(flow.conn),
                    int(flow.twin_conn),
                    service(flow),
                    endpoint(flow.client_ip, flow.client_port),
                    endpoint(flow.server_ip, flow.server_port),
                    str(verdict),
                    str(reason or ""),
                    ",".join(codes),
                )
            )
    return pd.DataFrame(rows, columns=verdicts_mod.VERDICT_COLUMNS)


def _assert_same(analysis) -> None:
    got = verdicts_mod.verdicts(analysis.context, analysis.findings_list)
    pd.testing.assert_frame_equal(got, _row_by_row(analysis.context, analysis.findings_list))
    pd.testing.assert_frame_equal(got, analysis.verdicts)


PAIRS = sorted(p for p in SAMPLES.iterdir() if (p / "host.pcap").exists() and (p / "container.pcap").exists())
ALONE = sorted(SAMPLES.glob("*/*.pcap")) + corpus_files("semantic")


@pytest.mark.parametrize("scenario", PAIRS, ids=lambda p: p.name)
def test_the_same_verdicts_for_each_sample_pair(scenario):
    analysis = pcapmtu.analyze(host=scenario / "host.pcap", container=scenario / "container.pcap")
    _assert_same(analysis)


@pytest.mark.parametrize("path", ALONE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_same_verdicts_for_each_capture_alone(path):
    try:
        analysis = pcapmtu.analyze(captures=[path])
    except pcapmtu.CaptureError:
        pytest.skip("not a readable capture")
    _assert_same(analysis)


def test_the_inputs_hold_every_kind_of_verdict_row():
    """Rows decided by findings, stalls no rule explains and healthy ones: the comparisons above cover each."""
    netflix = [p for p in ALONE if p.name == "ndpi__netflix.pcap"]
    if not netflix:
        pytest.skip("the shared corpus is not here")
    scene = SAMPLES / "blackhole_tls12"
    tables = [
        pcapmtu.analyze(host=scene / "host.pcap", container=scene / "container.pcap").verdicts,
        pcapmtu.analyze(captures=netflix).verdicts,
    ]
    seen = {
        ("codes" if c else "no codes", verdict)
        for v in tables
        for c, verdict in zip(v["codes"], v["verdict"], strict=True)
    }
    assert {("no codes", "healthy"), ("no codes", "inconclusive"), ("codes", "mtu_blackhole")} <= seen, seen


def test_endpoints_and_services_name_as_endpoint_and_service_do():
    ips = ["198.18.0.10", "fd00::1", None, "::ffff:10.0.0.1"]
    ports = [443, 80, 0, 8443]
    assert endpoints(ips, ports) == ["198.18.0.10:443", "[fd00::1]:80", "None:0", "[::ffff:10.0.0.1]:8443"]
    names = ["api.example", "", None, "x (y)"]
    assert services(names, ips, ports) == [
        "api.example (198.18.0.10:443)",
        "[fd00::1]:80",
        "None:0",
        "x (y) ([::ffff:10.0.0.1]:8443)",
    ]


def test_quiet_rows_answers_as_quiet_does_on_every_combination():
    """The column-wise stall test against the per-connection one, on every combination of its inputs, with
    values at the threshold and missing ones (a float column may hold NaN)."""
    names = ("handshake_ok", "request_sent", "stalled_s", "owed_stall", "state", "response_complete")
    names += ("unanswered", "tail_idle_s")
    rows = [
        (ok, sent, stalled, owed, state, complete, unanswered, tail)
        for ok, sent, owed, complete, unanswered in itertools.product((False, True), repeat=5)
        for stalled in (0.0, 2.999, 3.0, 120.0, float("nan"))
        for state in ("closed", "open", "closing", "reset")
        for tail in (0.0, 3.0, float("nan"))
    ]
    flows = pd.DataFrame(rows, columns=list(names))
    got = verdicts_mod._quiet_rows(flows, 3.0).tolist()
    assert got == [verdicts_mod._quiet(*row, 3.0) for row in rows]
    assert 0 < sum(got) < len(got)
