"""pcapmtu-capture.json: what `pcapmtu capture` recorded beside its captures, and how `analyze` finds it.

The schema is documented in docs/capturing.md (section "pcapmtu capture"). `analyze` reads only `mtus`,
`clamps` and the namespace's `kind`, and only for captures the document names (a stranger's pcap in the same folder is not its). The
same document is a comment of each pcapng's section header: a capture copied off the host without the JSON
file still brings it. Either is as untrusted as any capture: only MTUs in range and rule strings are taken.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

NAME = "pcapmtu-capture.json"
SCHEMA = "pcapmtu-capture/1"
MAX_BYTES = 1 << 20  # a metadata document is a few kilobytes; a larger file (or header block) is not ours
SHB_MAGIC = b"\x0a\x0d\x0d\x0a"  # a pcapng section header block


@dataclass(frozen=True)
class Recorded:
    """What analyze takes from a capture's metadata: the interface MTUs and the host's clamp rules."""

    path: Path
    host_mtu: int | None
    container_mtu: int | None
    clamp_rules: tuple[str, ...]
    platform: str | None = None  # "docker" when the container-side capture was a Docker container's


def write(directory: Path, document: dict) -> Path:
    path = directory / NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def beside(captures: list[Path]) -> tuple[Recorded | None, str]:
    """The metadata of these captures, if `pcapmtu capture` wrote them: (what it says, a warning or "").

    Looked for in each capture's folder, where it applies when it names that capture file, then inside each
    capture (its pcapng section header's comments). A metadata file that cannot be read is a warning, not an
    error: the captures are analysed without it."""
    found, warning = _in_folders(captures)
    if found is not None or warning:
        return found, warning
    for capture in captures:
        doc = inside(Path(capture))
        if doc is not None:
            return _recorded(Path(capture), doc), ""
    return None, ""


def inside(capture: Path) -> dict | None:
    """The document in the comments of a pcapng file's first section header, if it holds one."""
    try:
        with capture.open("rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != SHB_MAGIC:
                return None
            order = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            (length,) = struct.unpack(order + "I", head[4:8])
            if not 28 <= length <= MAX_BYTES:
                return None
            block = head + fh.read(length - 12)
    except OSError:
        return None
    pos = 24  # type, length, byte-order magic, version, section length
    while pos + 4 <= len(block) - 4:
        code, size = struct.unpack_from(order + "HH", block, pos)
        if code == 0:
            break
        if code == 1 and size and block[pos + 4 : pos + 5] == b"{":
            try:
                doc = json.loads(block[pos + 4 : pos + 4 + size])
            except ValueError:
                doc = None
            if isinstance(doc, dict) and doc.get("schema") == SCHEMA:
                return doc
        pos += 4 + size + (-size % 4)
    return None


def _in_folders(captures: list[Path]) -> tuple[Recorded | None, str]:
    for capture in captures:
        candidate = Path(capture).parent / NAME
        if not candidate.is_file():
            continue
        try:
            if candidate.stat().st_size > MAX_BYTES:
                raise ValueError("too large")
            doc = json.loads(candidate.read_text())
            if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
                raise ValueError(f"not a {SCHEMA} document")
            files = {str(c.get("file")) for c in (doc.get("captures") or {}).values() if isinstance(c, dict)}
        except (OSError, ValueError, AttributeError) as exc:
            return None, f"{candidate} ignored: {exc}"
        if Path(capture).name not in files:
            continue
        return _recorded(candidate, doc), ""
    return None, ""


def _recorded(path: Path, doc: dict) -> Recorded:
    """Only what has the documented shape is taken (the document may come from a hostile capture)."""
    mtus = doc.get("mtus") if isinstance(doc.get("mtus"), dict) else {}
    clamps = doc.get("clamps") if isinstance(doc.get("clamps"), list) else []
    namespace = doc.get("namespace")  # --container (Docker), --pid or --netns
    return Recorded(
        path,
        _mtu(mtus.get("host")),
        _mtu(mtus.get("container")),
        tuple(
            c["rule"] for c in clamps if isinstance(c, dict) and isinstance(c.get("rule"), str) and c["rule"]
        ),
        "docker" if isinstance(namespace, dict) and namespace.get("kind") == "container" else None,
    )


def _mtu(value) -> int | None:
    """An MTU from the document, if it is one (68 is IPv4's minimum, 65535 the largest a link reports)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 68 <= value <= 65535 else None
