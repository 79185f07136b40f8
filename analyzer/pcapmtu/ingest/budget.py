"""The read budget: how many packets, and how much memory for their tables, a read may take.

A capture (or a decompression bomb: 160 KB of gzip can hold 10 million zero-length records) that would
exceed it stops early, after the batch that crossed the limit, with one line (`TooBig`, exit code 2 on the
command line) instead of filling the machine's memory. Checked once per batch of records (up to 16 MiB of
the file), from counts the reader keeps anyway: no cost per packet.

The memory estimate of a read is what its tables take at their peak, measured (docs/performance.md), times
the packets kept, plus the bytes kept beside them (DNS/ICMP payloads, SACK blocks):

    estimate = BYTES_PER_PACKET (400; 200 with keep_packets=False) x packets kept + payload bytes kept

400 bytes is the peak RSS per packet of `pcapmtu analyze` on a 4M-packet real capture (377 B, interpreter
included), rounded up; 200 that of `inspect`, which keeps only TCP packets' lean columns (182 B). The
defaults follow the machine:

    max_memory  = 3/4 of MemAvailable (/proc/meminfo; elsewhere the available pages from sysconf) when the
                  read starts: what can be taken without swapping, less a quarter for the interpreter and
                  libraries (~100 MiB, not in the estimate), the estimate's spread and the machine's other work
    max_packets = max_memory // BYTES_PER_PACKET: the packets that memory holds at their measured cost

0 means no limit; max_memory=0 with no max_packets given means no limit at all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import TooBig, UsageError

BYTES_PER_PACKET = 400  # read() with its packets table, then the analysis: peak RSS per packet, rounded up
BYTES_PER_LEAN_PACKET = 200  # read(keep_packets=False), `inspect`: per packet kept (TCP, DNS, ICMP)
SACK_BYTES = 16  # row (8), left and right edges (4 + 4) of one SACK block
MEMINFO = "/proc/meminfo"
DEFAULT_SHARE = 0.75  # of the available memory

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """`8G`, `512M`, `1.5GiB`, `100000` (bytes): K, M, G and T are powers of 1024. Raises UsageError."""
    if isinstance(text, int):
        if text < 0:
            raise UsageError(f"a size cannot be negative ({text})")
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise UsageError(f"not a size: {text!r} (bytes, or with K, M, G or T: 8G, 512M)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(n: int) -> str:
    """Bytes for a person: 1.5 GiB, 300 MiB, 900 KiB."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n} bytes"


def available_memory() -> int:
    """Bytes the machine can give without swapping now: MemAvailable, or free pages; 0 when unknown."""
    try:
        with open(MEMINFO, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    fields = line.split()
                    return int(fields[1]) * (1024 if fields[2:3] == ["kB"] else 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def default_max_memory() -> int:
    """The memory limit when none is given: DEFAULT_SHARE of the available memory (0: unknown, no limit)."""
    return int(available_memory() * DEFAULT_SHARE)


@dataclass
class ReadBudget:
    """Limits for one read, or for several reads that are held together (`analyze`: the total).

    `max_packets`/`max_memory` as the caller gave them: None for the default, 0 for no limit.
    """

    max_packets: int | None = None
    max_memory: int | str | None = None
    shared: bool = False  # one budget for several captures held at once: the limits are for their total
    packets: int = 0  # read by the captures before this one
    memory: int = 0  # estimated for the captures before this one

    def __post_init__(self) -> None:
        if self.max_packets is not None and (not isinstance(self.max_packets, int) or self.max_packets < 0):
            raise UsageError(f"max_packets must be a whole number, 0 for no limit (not {self.max_packets!r})")
        self.memory_given = self.max_memory is not None
        self.memory_limit = default_max_memory() if self.max_memory is None else parse_size(self.max_memory)

    def packet_limit(self, keep_packets: bool) -> int:
        """The packet limit of a read: the one given, or what the memory limit holds (0: none)."""
        if self.max_packets is not None:
            return self.max_packets
        return self.memory_limit // cost(keep_packets) if self.memory_limit else 0

    def start(self, path, keep_packets: bool) -> ReadCheck:
        return ReadCheck(self, str(path), keep_packets)


def cost(keep_packets: bool) -> int:
    return BYTES_PER_PACKET if keep_packets else BYTES_PER_LEAN_PACKET


class ReadCheck:
    """The budget applied to one capture's read: `batch()` after each batch of records."""

    def __init__(self, budget: ReadBudget, path: str, keep_packets: bool) -> None:
        self.budget = budget
        self.path = path
        self.per_packet = cost(keep_packets)
        self.max_packets = budget.packet_limit(keep_packets)
        self.packets = 0  # read from this capture
        self.memory = 0  # estimated for this capture

    def batch(self, packets_read: int, packets_kept: int, payload_bytes: int) -> None:
        """Counts of this capture so far (read, kept, bytes kept beside the rows). Raises TooBig."""
        b = self.budget
        self.packets = packets_read
        self.memory = self.per_packet * packets_kept + payload_bytes
        total_packets, total_memory = b.packets + packets_read, b.memory + self.memory
        before = b.shared and b.packets > 0  # the captures read before this one count too
        if self.max_packets and total_packets > self.max_packets:
            if b.max_packets is not None:
                why, how = "--max-packets", "--max-packets N"
            else:
                why = f"what {self._memory_limit()} holds at {self.per_packet} bytes a packet"
                how = "--max-memory SIZE or --max-packets N"
            total = f" ({total_packets:,} with the captures read before it)" if before else ""
            raise TooBig(
                f"{self.path}: stopped reading after {packets_read:,} packets{total}: more than the limit of "
                f"{self.max_packets:,} packets ({why}); raise it with {how} (0: no limit)"
            )
        if b.memory_limit and total_memory > b.memory_limit:
            total = f" ({format_size(total_memory)} with the captures read before it)" if before else ""
            raise TooBig(
                f"{self.path}: stopped reading after {packets_read:,} packets: its tables would take about "
                f"{format_size(self.memory)}{total}, more than the limit of {self._memory_limit()}; "
                "raise it with --max-memory SIZE, e.g. 32G (0: no limit)"
            )

    def _memory_limit(self) -> str:
        size = format_size(self.budget.memory_limit)
        return f"--max-memory {size}" if self.budget.memory_given else f"3/4 of the available memory, {size}"

    def done(self) -> None:
        """The read finished: a shared budget carries its counts to the next capture."""
        if self.budget.shared:
            self.budget.packets += self.packets
            self.budget.memory += self.memory
