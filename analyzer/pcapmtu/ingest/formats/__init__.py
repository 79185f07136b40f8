"""Capture file formats: what a file is, and its records, walked once in bounded chunks.

    open      what the file is: magic bytes, compression (gzip, bz2, xz, zstd), the `CaptureFile` callers hold
    chunks    the file in 16 MiB chunks, the next one read ahead, each handed to a record walk
    pcap      the file header, and the record walks (in C, through uint32 views, with struct)
    pcapng    the block walker: every interface of every section, each with its own link type and clock

A walk yields `RecordBatch`es: one chunk of the file as a numpy byte array plus per-record columns. Nothing
here decodes packet contents (see `decode`).

Why a hand-written walker instead of `dpkt.pcap.Reader`: dpkt builds a Python object per record and its
pcapng reader only honours the first interface block; we need columns, every interface and bounded memory.
"""

from .chunks import CHUNK_BYTES, Interface, RecordBatch
from .open import CaptureFile

__all__ = ["CHUNK_BYTES", "CaptureFile", "Interface", "RecordBatch"]
