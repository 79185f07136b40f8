"""A capture stopped too early is never judged confidently wrong.

Users stop tcpdump whenever they like: before the failing request, right after its SYN, after its request,
in the middle of the hang. Every prefix of each lab black hole's captures is analysed alone. Once the failing
connection has begun (its first frame, as the whole capture's analysis finds it), the verdict is never
`healthy` above 50 %; and no prefix is ever called `not_mtu` (a SYN or a request whose answer may still have
been on the way is not a filter, nor a slow server).
"""

from __future__ import annotations

import json
from pathlib import Path

import dpkt
import pytest

import pcapmtu
from support.environment import lab_scenarios

MTU_VERDICTS = {"mtu_blackhole", "mtu_blackhole_recovered"}
ROLE_OF = {"container.pcap": "container", "host.pcap": "host"}
DENSE = 40  # every prefix up to this many frames past the failing connection's start, then every tenth


def _cases() -> list[tuple[Path, str]]:
    cases = []
    for d in lab_scenarios():
        if json.loads((d / "truth.json").read_text())["expected_verdict"] in MTU_VERDICTS:
            cases += [(d, name) for name in ROLE_OF if (d / name).exists()]
    return cases


def _frames(path: Path) -> tuple[list, int, int]:
    with open(path, "rb") as fh:
        pcapng = fh.read(4) == b"\x0a\x0d\x0d\x0a"  # the section header block's type
        fh.seek(0)
        reader = dpkt.pcapng.Reader(fh) if pcapng else dpkt.pcap.Reader(fh)
        return list(reader), reader.snaplen, reader.datalink()


@pytest.mark.lab
@pytest.mark.parametrize(("scenario", "name"), _cases(), ids=lambda v: getattr(v, "name", v))
def test_every_prefix_of_a_blackhole_capture(tmp_path, scenario, name):
    role = ROLE_OF[name]
    whole = pcapmtu.analyze(**{role: scenario / name})
    failing = whole.verdicts[whole.verdicts["verdict"].isin(MTU_VERDICTS)]
    if not len(failing):
        pytest.skip(
            f"{name} alone does not show the black hole ({whole.verdict}): no failing connection to cut"
        )
    flows = whole.context.flows(role)
    start = int(flows.set_index("conn").loc[failing["conn"].astype(int), "first_frame"].min())
    frames, snaplen, linktype = _frames(scenario / name)
    prefixes = [k for k in range(1, len(frames) + 1) if k <= start + DENSE or k % 10 == 0 or k == len(frames)]
    wrong = []
    for k in prefixes:
        cut = tmp_path / f"cut{k}.pcap"
        with open(cut, "wb") as fh:
            writer = dpkt.pcap.Writer(fh, snaplen=snaplen, linktype=linktype)
            for ts, frame in frames[:k]:
                writer.writepkt(frame, ts)
        result = pcapmtu.analyze(**{role: cut})
        confident_healthy = result.verdict == "healthy" and result.confidence > 0.5 and k >= start
        if result.verdict == "not_mtu" or confident_healthy:
            wrong.append((k, result.verdict, result.confidence, result.explanation[:160]))
        cut.unlink()
    assert not wrong, f"failing connection starts at frame {start}: {wrong}"
