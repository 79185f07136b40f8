"""Captures cut where a user might start or stop tcpdump, or taken with a shorter snap length: the frames
of a pcap or pcapng, written back (by support/pcapwriter.py) as a pcap of any slice of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dpkt

from support.pcapwriter import Record, write_pcap

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"  # the section header block's type


@dataclass(frozen=True)
class Frames:
    frames: list  # (timestamp, bytes)
    snaplen: int
    linktype: int

    def write(self, path: Path, start: int = 0, stop: int | None = None, snap: int | None = None) -> Path:
        """frames[start:stop] as a pcap at `path`; `snap`: each cut to that many bytes, as `tcpdump -s` does
        (the original length kept in the record header)."""
        records = [
            Record(float(ts), frame[:snap] if snap else frame, len(frame))
            for ts, frame in self.frames[start:stop]
        ]
        write_pcap(path, records, linktype=self.linktype, snaplen=snap or self.snaplen)
        return path

    def moved(self, frame: int, after: int) -> Frames:
        """Frame `frame` (1-based) written just after frame `after`, stamped with that frame's time: how
        `tcpdump -i any` interleaves two CPUs' packets when one CPU's copy waits behind the other's."""
        moving = self.frames[frame - 1]
        rest = [f for i, f in enumerate(self.frames, 1) if i != frame]
        at = after - (after > frame)  # the index just after `after` in the remaining frames
        return Frames(rest[:at] + [(rest[at - 1][0], moving[1])] + rest[at:], self.snaplen, self.linktype)


def frames_of(path: Path) -> Frames:
    with open(path, "rb") as fh:
        pcapng = fh.read(4) == PCAPNG_MAGIC
        fh.seek(0)
        reader = dpkt.pcapng.Reader(fh) if pcapng else dpkt.pcap.Reader(fh)
        return Frames(list(reader), reader.snaplen, reader.datalink())
