"""Captures cut where a user might start or stop tcpdump: the frames of a pcap or pcapng, written back as a
pcap of any slice of them (the same snap length and link type)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dpkt

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"  # the section header block's type


@dataclass(frozen=True)
class Frames:
    frames: list  # (timestamp, bytes)
    snaplen: int
    linktype: int

    def write(self, path: Path, start: int = 0, stop: int | None = None) -> Path:
        """frames[start:stop] as a pcap at `path`."""
        with open(path, "wb") as fh:
            writer = dpkt.pcap.Writer(fh, snaplen=self.snaplen, linktype=self.linktype)
            for ts, frame in self.frames[start:stop]:
                writer.writepkt(frame, ts)
        return path


def frames_of(path: Path) -> Frames:
    with open(path, "rb") as fh:
        pcapng = fh.read(4) == PCAPNG_MAGIC
        fh.seek(0)
        reader = dpkt.pcapng.Reader(fh) if pcapng else dpkt.pcap.Reader(fh)
        return Frames(list(reader), reader.snaplen, reader.datalink())
