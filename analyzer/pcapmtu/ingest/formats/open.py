"""What a capture file is: its magic bytes, its compression (gzip, bz2, xz, zstd: decompressed into a
temporary file, so records can be re-read by offset), and the `CaptureFile` that walks its records once
(pcap or pcapng).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ...errors import CaptureError
from . import pcap, pcapng
from .chunks import CHUNK_BYTES, Interface, RecordBatch
from .pcap import PCAP_MAGICS
from .pcapng import PCAPNG_MAGIC

COMPRESSED = {
    b"\x1f\x8b": ("gzip", gzip.open),
    b"BZh": ("bz2", bz2.open),
    b"\xfd7zXZ\x00": ("xz", lzma.open),
}
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstd_open(path, mode):
    return _ZstdStream(path)


class _ZstdStream:
    """Reads zstd frames one after another. zstandard's own reader ends silently inside a cut frame;
    this one raises EOFError there, as gzip, bz2 and lzma do, so a damaged file is reported."""

    def __init__(self, path) -> None:
        import zstandard  # optional: only needed for .zst captures

        self._new = zstandard.ZstdDecompressor().decompressobj
        self._dec = self._new()
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        self._pending = b""
        self._inside = False  # inside a frame that has not ended yet

    def read1(self, _size: int = -1) -> bytes:
        while True:
            data = self._pending or self._fh.read(1024)  # small steps: one call yields at most ~32 MiB
            self._pending = b""
            if not data:
                if self._inside:
                    raise EOFError("compressed file ended inside a zstd frame")
                return b""
            out = self._dec.decompress(data)
            self._inside = not self._dec.eof
            if self._dec.eof:
                self._pending = self._dec.unused_data
                self._dec = self._new()
            if out:
                return out

    def __enter__(self) -> _ZstdStream:
        return self

    def __exit__(self, *_exc) -> None:
        self._fh.close()


COMPRESSED[ZSTD_MAGIC] = ("zstd", _zstd_open)


@dataclass
class CaptureFile:
    """An opened capture: format facts, interfaces, warnings; `batches()` walks it once."""

    path: Path
    format: str = ""
    compression: str = ""
    byte_order: str = "<"
    interfaces: list[Interface] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped_bytes: int = 0
    records: int = 0
    _bad_frac: int = 0  # pcap records whose sub-second field is out of range
    _absurd_ts: int = 0  # pcapng packets whose time is past pcapng.MAX_TS_NS (set to 0)
    _readable: Path | None = None
    _tmpdir: str | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> CaptureFile:
        """Open `path`, decompress if needed, and read the file header. Raises CaptureError."""
        cap = cls(Path(path))
        try:
            size = cap.path.stat().st_size
        except OSError as exc:
            raise CaptureError(f"{path}: cannot open: {exc.strerror or exc}") from None
        if cap.path.is_dir():
            raise CaptureError(f"{path}: is a directory, not a capture file")
        if size == 0:
            raise CaptureError(f"{path}: empty file (0 bytes), not a capture")
        head = _read_head(cap.path, 8)
        for magic, (name, opener) in COMPRESSED.items():
            if head.startswith(magic):
                cap.compression = name
                cap._decompress(opener)
                head = _read_head(cap._readable or cap.path, 8)
                break
        if head[:4] in PCAP_MAGICS:
            cap.format = "pcap"
        elif head[:4] == PCAPNG_MAGIC:
            cap.format = "pcapng"
        else:
            cap.close()
            raise CaptureError(
                f"{path}: not a capture file (magic {head[:4].hex() or 'none'}); pcapmtu reads pcap, pcapng "
                "and gzip/bz2/xz/zstd-compressed captures"
            )
        if cap._readable is None:
            cap._readable = cap.path
        return cap

    def _decompress(self, opener) -> None:
        """Stream-decompress into a temporary file so records can be re-read by offset later."""
        self._tmpdir = tempfile.mkdtemp(prefix="pcapmtu-")
        out = Path(self._tmpdir) / "capture"
        damage = ""
        try:
            with opener(self.path, "rb") as src, open(out, "wb") as dst:
                # read1: one decompression step per call, so everything before a damaged spot is kept
                # (read(n) would drop what the failing call had already decompressed)
                written, checked = 0, 0
                while chunk := src.read1(1024 * 1024):
                    try:
                        dst.write(chunk)
                    except OSError as exc:  # the disk, not the capture: say so, never "damaged"
                        raise CaptureError(
                            f"{self.path}: cannot write its decompressed copy in {out.parent.parent}: "
                            f"{exc.strerror or exc}"
                        ) from None
                    written += len(chunk)
                    if written - checked >= DISK_CHECK_BYTES:
                        checked = written
                        _keep_room(self.path, out, written)
        except CaptureError:
            self.close()
            raise
        except ImportError:
            self.close()
            raise CaptureError(
                f"{self.path}: {self.compression}-compressed; install 'zstandard' or decompress it first"
            ) from None
        except Exception as exc:  # noqa: BLE001 - every codec has its own error types
            # a truncated compressed stream still gave us what came before the damage
            damage = str(exc) or type(exc).__name__
            self.warnings.append(f"{self.compression} stream is damaged ({damage}); read what came before it")
        self._readable = out
        if out.stat().st_size == 0:
            self.close()
            if damage:
                raise CaptureError(
                    f"{self.path}: {self.compression} stream is damaged before any data ({damage})"
                )
            raise CaptureError(f"{self.path}: {self.compression} file decompresses to nothing")

    def close(self) -> None:
        """Remove the temporary decompressed copy, if any."""
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def readable_size(self) -> int:
        """Size of the bytes `batches()` walks (after decompression)."""
        assert self._readable is not None
        return self._readable.stat().st_size

    def reopen(self) -> BinaryIO:
        """A fresh binary handle on the readable (decompressed) bytes, for re-reading records by offset."""
        assert self._readable is not None
        return open(self._readable, "rb")

    # ------------------------------------------------------------------ walking
    def batches(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[RecordBatch]:
        """Walk every record once, in file order, in chunks of about `chunk_bytes`."""
        self._bad_frac = self._absurd_ts = 0
        with self.reopen() as fh:
            if self.format == "pcap":
                yield from pcap.batches(self, fh, chunk_bytes)
            else:
                yield from pcapng.batches(self, fh, chunk_bytes)
        # one warning per file, however many chunks it took
        if self._bad_frac:
            self.warnings.append(f"{self._bad_frac} record(s) with an impossible sub-second timestamp field")
        if self._absurd_ts:
            self.warnings.append(f"{self._absurd_ts} packet(s) with an absurd timestamp (set to 0)")


DISK_CHECK_BYTES = 64 * 1024 * 1024  # how often decompression looks at the free space it leaves
DISK_RESERVE = 1 << 30  # never take the temporary directory's disk below 1 GiB or 5 % of its size free


def _keep_room(path: Path, out: Path, written: int) -> None:
    """Stop decompressing before the temporary copy fills its disk: the read budget bounds memory, and a
    decompression bomb (3 MB of gzip can hold 1.6 GB of records) would otherwise fill the disk first."""
    usage = shutil.disk_usage(out.parent)
    if usage.free < max(DISK_RESERVE, usage.total // 20):
        gib = 1 << 30
        raise CaptureError(
            f"{path}: decompressing it would fill the disk of {out.parent.parent} ({written / gib:.1f} GiB "
            f"written, {usage.free / gib:.1f} GiB left); decompress it where there is room, or point TMPDIR "
            "at a bigger disk"
        )


def _read_head(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read: {exc.strerror or exc}") from None
