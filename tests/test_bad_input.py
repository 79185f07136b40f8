"""Bad input never crashes: `read()` returns (maybe with warnings) or raises CaptureError, and the CLI exits
0 or 2 with one `pcapmtu:` line, never a traceback.

Covers the public corpus of fuzzer/ASAN reproducers, hand-made damage to captures built here, and a
property-based test that mutates small valid captures byte by byte.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import random
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import pcapmtu
from pcapmtu.cli import app
from pcapmtu.ingest.decode import STATUS_NAMES
from pcapmtu.render.jsondoc import inspect_document
from support import packets as pb
from support.damage import BASES, FRAMES, FUZZ_EXAMPLES, assert_same_reading_without, mutate, mutation
from support.environment import CORPUS, corpus_files
from support.packets import C, S, ipv4
from support.pcapwriter import Pcapng, pcap_bytes

MALFORMED = [p for p in corpus_files("malformed") if not p.name.endswith(".md")]


def read_or_capture_error(path) -> pcapmtu.Capture | None:
    """The contract under test: a Capture, or CaptureError; any other exception fails the test."""
    try:
        cap = pcapmtu.read(path)
    except pcapmtu.CaptureError as exc:
        text = str(exc)
        assert text and "\n" not in text
        return None
    # what `inspect` does with a capture must work too
    json.dumps(inspect_document([cap]), allow_nan=False)
    assert len(cap.packets) == len(cap.packets["frame"].unique())
    assert cap.skipped_bytes >= 0
    return cap


def check_cli_result(result) -> None:
    assert result.exit_code in (0, 2), (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout and "Traceback" not in result.stderr
    if result.exit_code == 2:
        assert result.stderr.startswith("pcapmtu:")
        assert len(result.stderr.splitlines()) == 1
    assert "internal error" not in result.stderr


# ----------------------------------------------------------------------------------- public corpus
@pytest.mark.parametrize("path", MALFORMED, ids=lambda p: p.name)
def test_malformed_corpus_file(path):
    read_or_capture_error(path)
    check_cli_result(CliRunner().invoke(app, ["inspect", str(path)]))


@pytest.mark.parametrize("path", MALFORMED[:: max(1, len(MALFORMED) // 6)], ids=lambda p: p.name)
def test_malformed_corpus_file_json(path):
    result = CliRunner().invoke(app, ["inspect", "--json", str(path)])
    check_cli_result(result)
    doc = json.loads(result.stdout)
    assert len(doc["captures"]) == (1 if result.exit_code == 0 else 0)


# file -> (packets read, a warning must mention this, or None when the file must be refused)
EXPECTED = {
    "libpcap__pcap-invalid-version-1.pcap": None,
    "dpkt__truncated_dns_2.pcap": (1, "byte(s) skipped"),
    "suricata__tls_DER-incomplete-header.pcap": (6, "file ends inside a record"),
    "suricata__bug-6875-01-fuzz.pcap": (1, "absurd captured length"),
    "ndpi__fuzz-2021-10-13.pcap": (1, "file ends inside a record"),  # version 2.0: lengths swapped
    "gopacket__pcapng-shb-version-2.0-test901.pcapng": (1, "unsupported pcapng version"),
    "libpcap__pcapng-invalid-vers-1.pcapng": (0, "unsupported pcapng version"),
    "tcpdump__empty.pcap": (0, "no packets"),
    "tcpdump__empty.pcapng": (0, "no packets"),
    "tcpdump__unsupported-link-type-160.pcap": (1, "unsupported-linktype"),
    "tcpdump__timestamp_invalid_micro.pcap": (3, "impossible sub-second"),
    "zeek__trunc-hdr.pcap": (1, "link-truncated"),
    "ndpi__ip_fragmented_garbage.pcap": (1252, None),
    "libpcap__linktype-reserved-field-not-zero.pcap": (0, "reserved bits"),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_malformed_corpus_expectations(name):
    path = CORPUS / "malformed" / name
    if not path.exists():
        pytest.skip("corpus not present")
    expected = EXPECTED[name]
    if expected is None:
        with pytest.raises(pcapmtu.CaptureError):
            pcapmtu.read(path)
        return
    count, note = expected
    cap = pcapmtu.read(path)
    assert len(cap.packets) == count
    if note:
        assert any(note in w for w in cap.warnings), cap.warnings


def _cli_binary() -> Path:
    exe = Path(sys.executable).with_name("pcapmtu")
    if not exe.exists():
        pytest.skip("pcapmtu console script not installed in this environment")
    return exe


def test_real_process(tmp_path):
    """One real `pcapmtu inspect` process over every malformed corpus file plus one refused file."""
    refused = tmp_path / "refused.pcap"
    refused.write_bytes(b"this is not a capture at all")
    readable = [str(p) for p in MALFORMED if p.name not in EXPECTED or EXPECTED[p.name] is not None]
    proc = subprocess.run(
        [_cli_binary(), "inspect", *readable, str(refused)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.startswith("pcapmtu:") and len(proc.stderr.splitlines()) == 1
    assert "refused.pcap" in proc.stderr and "not a capture file" in proc.stderr
    assert "internal error" not in proc.stderr


def test_cli_error_is_exactly_one_line(tmp_path):
    """A long message is not wrapped at the terminal width: scripts read the first stderr line."""
    long_dir = tmp_path / ("d" * 60)
    long_dir.mkdir()
    bad = long_dir / "not-a-capture.pcap"
    bad.write_bytes(b"\x00" * 64)
    result = CliRunner().invoke(app, ["inspect", str(bad)])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("pcapmtu:")


# ---------------------------------------------------------------------------------- hand-made damage
def _records(n: int = 10) -> list[tuple]:
    frames = [ip for _t, ip in pb.handshake(C, S, 40000, 443)]
    rng = random.Random(n)  # incompressible payloads: compressed files then hold many blocks
    frames += [
        pb.tcp(C, S, 40000, 443, seq=1001 + 100 * i, ack=5001, payload=rng.randbytes(100))
        for i in range(n - 3)
    ]
    return [(1000 + i, i, pb.ether(f)) for i, f in enumerate(frames)]


def _record_ends(data: bytes, header: int = 24) -> list[int]:
    """End offset of each pcap record (little-endian, 16-byte record headers)."""
    ends, pos = [], header
    while pos + 16 <= len(data):
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
        ends.append(pos)
    return ends


@pytest.mark.parametrize("where", ["data", "header"])
def test_truncated_mid_record(tmp_path, where):
    data = pcap_bytes(_records())
    ends = _record_ends(data)
    cut = ends[5] + (30 if where == "data" else 9)  # inside record 7
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:cut])
    cap = pcapmtu.read(path)
    assert len(cap.packets) == 6
    assert cap.packets["seq"].tolist() == [1000, 5000, 1001, 1001, 1101, 1201]
    skipped = cut - ends[5]
    assert cap.skipped_bytes == skipped
    assert any(f"{skipped} byte(s) skipped" in w and "file ends inside a record" in w for w in cap.warnings)
    assert len(cap.flows) == 1


def test_truncated_pcapng_mid_block(tmp_path):
    ng = Pcapng().shb().idb(1, 6)
    for i, (sec, _frac, frame) in enumerate(_records(5)):
        ng.epb(0, sec * 10**6 + i, frame)
    data = ng.bytes()
    path = tmp_path / "cut.pcapng"
    path.write_bytes(data[:-20])
    cap = pcapmtu.read(path)
    assert len(cap.packets) == 4
    last_block = 32 + len(_records(5)[4][2]) + (-len(_records(5)[4][2]) % 4)
    assert cap.skipped_bytes == last_block - 20
    assert any("file ends inside a block" in w for w in cap.warnings)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\x00" * 100, "not a capture file"),
        (b"GIF89a" + bytes(range(200)), "not a capture file"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated"),  # pcap magic, header cut short
        (b"\xd4\xc3\xb2\xa1\x01\x00\x04\x00" + b"\x00" * 16, "version"),
        (gzip.compress(b""), "decompresses to nothing"),
        (gzip.compress(b"just some text, compressed"), "not a capture file"),
        (b"\x1f\x8b" + b"\x00" * 50, "gzip"),  # gzip magic, garbage after it
    ],
    ids=[
        "zero-bytes",
        "zeros",
        "gif",
        "short-header",
        "version-1",
        "empty-gzip",
        "gzip-text",
        "gzip-garbage",
    ],
)
def test_refused_files(tmp_path, content, message):
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(pcapmtu.CaptureError, match=message):
        pcapmtu.read(path)
    check_cli_result(CliRunner().invoke(app, ["inspect", str(path)]))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(pcapmtu.CaptureError, match="cannot open"):
        pcapmtu.read(tmp_path / "nope.pcap")
    with pytest.raises(pcapmtu.CaptureError, match="directory"):
        pcapmtu.read(tmp_path)
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "nope.pcap"), str(tmp_path)])
    assert result.exit_code == 2 and result.stderr.count("pcapmtu:") == 2


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "random.pcap"
    path.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 5000))))
    read_or_capture_error(path)
    for magic in (
        b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00",
        b"\x0a\x0d\x0d\x0a",
        b"\x4d\x3c\xb2\xa1\x02\x00\x04\x00",
    ):
        path.write_bytes(magic + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3000))))
        read_or_capture_error(path)


def test_absurd_record_length(tmp_path):
    data = bytearray(pcap_bytes(_records()))
    ends = _record_ends(bytes(data))
    struct.pack_into("<I", data, ends[3] + 8, 0xFFFFFFF0)  # record 5 claims 4 GiB
    path = tmp_path / "absurd.pcap"
    path.write_bytes(data)
    cap = pcapmtu.read(path)
    assert len(cap.packets) == 4
    assert cap.skipped_bytes == len(data) - ends[3]
    assert any("absurd captured length (4294967280 bytes)" in w for w in cap.warnings)


def test_unknown_link_type(tmp_path):
    path = tmp_path / "lt.pcap"
    path.write_bytes(pcap_bytes(_records(4), linktype=4242))
    cap = pcapmtu.read(path)
    assert cap.packets["status"].tolist() == ["unsupported-linktype"] * 4
    assert len(cap.flows) == 0
    check_cli_result(CliRunner().invoke(app, ["inspect", str(path)]))


def test_timestamps_going_backwards(tmp_path):
    recs = _records(6)
    recs[2], recs[4] = (recs[2][0] - 500, *recs[2][1:]), (recs[4][0] - 100, *recs[4][1:])
    path = tmp_path / "back.pcap"
    path.write_bytes(pcap_bytes(recs))
    cap = pcapmtu.read(path)
    assert len(cap.packets) == 6
    assert cap.packets["ts_ns"].tolist() == [(r[0] * 10**6 + r[1]) * 1000 for r in recs]
    assert any("2 packet(s) have a timestamp earlier" in w for w in cap.warnings)
    assert cap.packets["frame"].tolist() == [1, 2, 3, 4, 5, 6]  # file order kept


def _pcapng_with_bad_block(kind: str) -> tuple[bytes, int]:
    ng = Pcapng().shb().idb(1, 6).epb(0, 1, pb.ether(pb.tcp(C, S, 1, 2)))
    good = len(ng.bytes())
    frame = pb.ether(pb.tcp(C, S, 1, 2, seq=9))
    if kind == "length-not-multiple-of-4":
        ng.raw(struct.pack("<II", 6, 45) + b"\x00" * 37)
    elif kind == "length-below-12":
        ng.raw(struct.pack("<II", 6, 8) + b"\x00" * 40)
    elif kind == "length-huge":
        ng.raw(struct.pack("<II", 6, 0xFFFFFFF0) + b"\x00" * 40)
    elif kind == "epb-too-short":
        ng.raw(struct.pack("<III", 6, 16, 0) + struct.pack("<I", 16))
    elif kind == "caplen-beyond-block":
        ng.raw(struct.pack("<IIIIIII", 6, 32 + 60, 0, 0, 1, 5000, 5000) + frame[:60] + struct.pack("<I", 92))
    elif kind == "unknown-interface":
        ng.epb(7, 2, frame)
    elif kind == "idb-too-short":
        ng.block(1, b"\x01\x00")
    elif kind == "spb-before-idb":
        ng = Pcapng().shb().spb(frame)
        good = 28  # right after the section header
    elif kind == "second-shb-bad-bom":
        ng.raw(
            struct.pack("<II", 0x0A0D0D0A, 28) + b"\x11\x22\x33\x44" + b"\x00" * 12 + struct.pack("<I", 28)
        )
    ng.epb(0, 3, frame)
    data = ng.bytes()
    return data, good


@pytest.mark.parametrize(
    "kind",
    [
        "length-not-multiple-of-4",
        "length-below-12",
        "length-huge",
        "epb-too-short",
        "caplen-beyond-block",
        "unknown-interface",
        "idb-too-short",
        "spb-before-idb",
        "second-shb-bad-bom",
    ],
)
def test_pcapng_bad_blocks(tmp_path, kind):
    data, good = _pcapng_with_bad_block(kind)
    path = tmp_path / "bad.pcapng"
    path.write_bytes(data)
    cap = pcapmtu.read(path)
    assert len(cap.packets) == (0 if kind == "spb-before-idb" else 1)
    assert cap.skipped_bytes == len(data) - good
    assert any(f"block at offset {good} " in w for w in cap.warnings), cap.warnings


def test_pcapng_idb_options_running_past_the_block(tmp_path):
    ng = Pcapng().shb()
    # if_tsoffset (code 14) claims 8 bytes but the block ends after 4 of them
    ng.block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 14, 8) + b"\x01\x02\x03\x04")
    ng.block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 200) + b"\x09\x00\x00\x00")
    ng.epb(0, 5, pb.ether(pb.tcp(C, S, 1, 2))).epb(1, 6, pb.ether(pb.tcp(C, S, 1, 2)))
    path = tmp_path / "opts.pcapng"
    path.write_bytes(ng.bytes())
    cap = pcapmtu.read(path)
    assert cap.packets["ts_ns"].tolist() == [5000, 6000]  # the broken options are ignored


@pytest.mark.parametrize(
    "name, compress",
    [
        ("gzip", gzip.compress),
        ("bz2", lambda d: bz2.compress(d, compresslevel=1)),  # 100 kB blocks
        ("xz", lzma.compress),
        ("zstd", lambda d: zstandard.ZstdCompressor().compress(d)),
    ],
)
def test_compressed_stream_cut_short(tmp_path, name, compress):
    """What came before the cut is read (bz2 and zstd decode whole blocks: several are needed)."""
    plain = pcap_bytes(_records(1500))
    packed = compress(plain)
    path = tmp_path / "cut.pcap"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    cap = pcapmtu.read(path)
    assert cap.compression == name
    assert 0 < len(cap.packets) < 1500
    assert any(f"{name} stream is damaged" in w for w in cap.warnings), cap.warnings
    check_cli_result(CliRunner().invoke(app, ["inspect", str(path)]))


def test_icmp_error_shorter_than_its_header(tmp_path):
    """IP says the ICMP message is 1 byte long while more was captured: a status, not a crash."""
    icmp = bytes([3, 4, 0, 0, 0, 0, 5, 0xDC]) + bytes(28)
    pkt = ipv4(C, S, 1, icmp, total=21)
    path = tmp_path / "icmp.pcap"
    path.write_bytes(pcap_bytes([(1, 0, pb.ether(pkt))]))
    cap = pcapmtu.read(path)
    assert cap.packets["status"].tolist() == ["icmp-truncated"]
    assert len(cap.icmp) == 0


# ---------------------------------------------------------------------------------- property-based
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=5000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    base=st.sampled_from(range(len(BASES))),
    ops=st.lists(mutation, min_size=1, max_size=6),
    gz=st.booleans(),
)
def test_mutated_captures_read_or_refuse(base, ops, gz):
    data = mutate(BASES[base], ops)
    if gz:
        data = gzip.compress(data)
    with tempfile.TemporaryDirectory(prefix="pcapmtu-fuzz-") as tmp:
        path = Path(tmp) / "mutated.pcap"
        path.write_bytes(data)
        read_or_capture_error(path)


@settings(
    max_examples=FUZZ_EXAMPLES // 2,
    deadline=10000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(base=st.sampled_from(range(len(BASES))), ops=st.lists(mutation, min_size=1, max_size=6))
def test_bulk_walks_read_damaged_files_exactly_like_the_plain_walks(base, ops):
    """The fast record walks (and the read-ahead thread) must agree with the record-by-record walks over
    one buffer on every damaged file: the same packets, warnings and skipped bytes, or the same error."""
    from pcapmtu.ingest import formats
    from pcapmtu.ingest.formats import chunks

    with pytest.MonkeyPatch.context() as m:  # chunks smaller than the files: the read-ahead thread reads them
        m.setattr(formats, "CHUNK_BYTES", 256)
        assert_same_reading_without(mutate(BASES[base], ops), (chunks, "BULK_WALKS"), (chunks, "READ_AHEAD"))


@settings(
    max_examples=FUZZ_EXAMPLES // 3,
    deadline=5000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from(range(len(FRAMES))),
            st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
            st.integers(0, 400),
        ),
        min_size=1,
        max_size=12,
    ),
    linktype=st.sampled_from([None, 0, 1, 12, 101, 108, 113, 228, 229, 276]),
)
def test_mutated_packets_decode_or_report(frames, linktype):
    """Damage inside packets (not the file structure): every row gets a status, nothing raises."""
    ng = Pcapng().shb()
    kinds = [0, 1, 12, 101, 108, 113, 228, 229, 276]
    for lt in kinds:
        ng.idb(lt, 6)
    for i, (which, pokes, cut) in enumerate(frames):
        lt, frame = FRAMES[which]
        frame = bytearray(frame)
        for where, value in pokes:
            frame[where % len(frame)] = value
        frame = bytes(frame[: max(cut, 1)])
        ng.epb(kinds.index(lt if linktype is None else linktype), i, frame, wirelen=len(FRAMES[which][1]))
    with tempfile.TemporaryDirectory(prefix="pcapmtu-fuzz-") as tmp:
        path = Path(tmp) / "packets.pcapng"
        path.write_bytes(ng.bytes())
        cap = read_or_capture_error(path)
    assert cap is not None and len(cap.packets) == len(frames)
    assert set(cap.packets["status"].astype(str)) <= set(STATUS_NAMES)
