"""Which files a scan reads: its PATH arguments (files, directories, globs) to capture files and manifests.

A file named on the command line is always taken, whatever its name (a damaged or oddly named capture then
gets its error line). Inside a directory, walked recursively in name order, only capture names are taken
(CAPTURE_SUFFIXES, optionally compressed), so notes, truth files and earlier reports beside the captures are
left alone; hidden directories (`.git`) are not entered. A file named MANIFEST_NAME anywhere is a manifest
(groups.py). Each file is taken once, however many arguments reach it.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")
COMPRESSED_SUFFIXES = ("", ".gz", ".bz2", ".xz", ".zst")
MANIFEST_NAME = "pcapmtu-scan.json"
GLOB_CHARS = frozenset("*?[")


@dataclass
class Found:
    """What the PATH arguments name: captures and manifests, each once, in a stable order."""

    captures: list[Path] = field(default_factory=list)
    manifests: list[Path] = field(default_factory=list)


def capture_stem(name: str) -> str | None:
    """`host.pcap.gz` -> `host`; None when the name is not a capture's."""
    lower = name.lower()
    for packed in COMPRESSED_SUFFIXES:
        for suffix in CAPTURE_SUFFIXES:
            end = suffix + packed
            if lower.endswith(end) and len(name) > len(end):
                return name[: -len(end)]
    return None


def discover(paths: list[str | os.PathLike[str]]) -> Found:
    """Expand the arguments. Raises UsageError for an argument that names nothing (a missing file, a glob
    that matches nothing): a typo must not silently scan less than was asked."""
    found = Found()
    seen: set[Path] = set()
    for arg in paths:
        text = os.fspath(arg)
        if Path(text).exists():
            matches = [Path(text)]
        elif GLOB_CHARS.intersection(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            if not matches:
                raise UsageError(f"{text}: no file matches this pattern")
        else:
            raise UsageError(f"{text}: no such file or directory")
        for path in matches:
            if path.is_dir():
                for name in _walk(path):
                    _take(found, seen, name, named=False)
            else:
                _take(found, seen, path, named=True)
    return found


def _walk(top: Path):
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            yield Path(root, name)


def _take(found: Found, seen: set[Path], path: Path, named: bool) -> None:
    real = path.resolve()
    if real in seen:
        return
    if path.name == MANIFEST_NAME:
        seen.add(real)
        found.manifests.append(path)
    elif named or capture_stem(path.name) is not None:
        seen.add(real)
        found.captures.append(path)
