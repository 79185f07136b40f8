"""pcapmtu-capture.json: what `pcapmtu capture` recorded beside its captures, and how `analyze` finds it.

The schema is documented in docs/capturing.md (section "pcapmtu capture"). `analyze` reads only `mtus` and
`clamps`, and only for captures the document names (a stranger's pcap in the same folder is not its).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

NAME = "pcapmtu-capture.json"
SCHEMA = "pcapmtu-capture/1"
MAX_BYTES = 1 << 20  # a metadata document is a few kilobytes; a larger file is not ours


@dataclass(frozen=True)
class Recorded:
    """What analyze takes from a capture's metadata: the interface MTUs and the host's clamp rules."""

    path: Path
    host_mtu: int | None
    container_mtu: int | None
    clamp_rules: tuple[str, ...]


def write(directory: Path, document: dict) -> Path:
    path = directory / NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def beside(captures: list[Path]) -> tuple[Recorded | None, str]:
    """The metadata of these captures, if `pcapmtu capture` wrote them: (what it says, a warning or "").

    Looked for in each capture's folder; it applies when it names that capture file. A metadata file that
    cannot be read is a warning, not an error: the captures are analysed without it."""
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
    mtus = doc.get("mtus") or {}
    clamps = doc.get("clamps") or []
    return Recorded(
        path,
        _mtu(mtus.get("host")),
        _mtu(mtus.get("container")),
        tuple(str(c["rule"]) for c in clamps if isinstance(c, dict) and c.get("rule")),
    )


def _mtu(value) -> int | None:
    """An MTU from the document, if it is one (68 is IPv4's minimum, 65535 the largest a link reports)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 68 <= value <= 65535 else None
