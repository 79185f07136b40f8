"""Captures into incidents: which files are analysed together, and in which role (docs/scan.md, "Groups").

Three rules, applied in this order; a file belongs to the first group that claims it:

1. A manifest (`pcapmtu-scan.json`) names its groups and their roles, paths relative to itself.
2. Names: in one directory, `host.*` is the docker host's capture, `server.*` the server's and `container*.*`
   the containers' (as the lab's sample_pcaps/<scenario>/ folders and a DaemonSet's per-node folders hold
   them): together they are one incident.
3. Connection pairing, for the files left in a directory: two captures that saw the same TCP connection
   (same server address and port, same client initial sequence number: NAT rewrites neither, pairing.py)
   are one incident, their roles found by where each was taken (roles.py); a capture that shares no
   connection with another is an incident alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .discover import Found, capture_stem

ROLES = ("host", "container", "server", "capture")  # "capture": a role found from where it was taken
GROUPED_BY = ("manifest", "names", "pairing", "alone")


@dataclass(frozen=True)
class Member:
    path: str  # as discovered or as the manifest names it (relative to the working directory)
    role: str  # one of ROLES


@dataclass(frozen=True)
class Group:
    """One incident: the captures analysed together (`pcapmtu.analyze`) and how they were grouped."""

    id: str  # stable and path-safe: a Parquet partition, a report folder (slug of the name + path hash)
    name: str
    grouped_by: str  # one of GROUPED_BY
    members: tuple[Member, ...]
    host_mtu: int | None = None  # stated facts, from a manifest
    container_mtu: int | None = None


def group_id(name: str, members: Iterable[Member]) -> str:
    """The slug of the name and 8 hex digits of the files' absolute paths: copies of the same captures in
    two folders are two groups, and the same folder scanned twice is the same group."""
    where = "\n".join(f"{m.role}\t{Path(m.path).resolve()}" for m in members)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:60] or "group"
    return f"{slug}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"


def _group(name: str, grouped_by: str, members: list[Member], **facts) -> Group:
    return Group(group_id(name, members), name, grouped_by, tuple(members), **facts)


def group(found: Found, pairing_keys: Callable[[list[str]], list[frozenset]]) -> list[Group]:
    """The groups of the found files, in a stable order. `pairing_keys(paths)` gives each path's
    connection keys (`connection_keys`, run where the executor runs work); called only for files that
    neither a manifest nor the names place."""
    claimed: set[Path] = set()
    groups: list[Group] = []
    for manifest in found.manifests:
        for g in read_manifest(manifest):
            groups.append(g)
            claimed.update(Path(m.path).resolve() for m in g.members)
    by_dir: dict[Path, list[Path]] = {}
    for path in found.captures:
        if path.resolve() not in claimed:
            by_dir.setdefault(path.parent, []).append(path)
    leftovers: list[Path] = []
    for folder, paths in by_dir.items():
        named, rest = _by_names(paths)
        if named:
            groups.append(_group(_folder_name(folder), "names", named))
        leftovers += rest
    groups += _by_pairing(leftovers, pairing_keys)
    return groups


def _folder_name(folder: Path) -> str:
    return folder.resolve().name or str(folder)


def _by_names(paths: list[Path]) -> tuple[list[Member], list[Path]]:
    """The naming convention of one directory: (its members, the files it does not place)."""
    host = server = None
    containers: list[Path] = []
    rest: list[Path] = []
    for path in paths:
        stem = (capture_stem(path.name) or "").lower()
        if stem == "host" and host is None:
            host = path
        elif stem == "server" and server is None:
            server = path
        elif stem.startswith("container"):
            containers.append(path)
        else:
            rest.append(path)
    # container.pcap first, then container2, container-web... in name order: analyze's container, container2...
    containers.sort(key=lambda p: (capture_stem(p.name).lower() != "container", p.name))
    members = [Member(str(host), "host")] if host else []
    members += [Member(str(p), "container") for p in containers]
    members += [Member(str(server), "server")] if server else []
    return members, rest


def _by_pairing(paths: list[Path], pairing_keys: Callable[[list[str]], list[frozenset]]) -> list[Group]:
    """Captures of one directory that share a connection are one group (transitively); others alone."""
    by_dir: dict[Path, list[Path]] = {}
    for path in paths:
        by_dir.setdefault(path.parent, []).append(path)
    to_read = [p for ps in by_dir.values() if len(ps) > 1 for p in ps]
    keys = dict(zip(to_read, pairing_keys([str(p) for p in to_read]), strict=True)) if to_read else {}
    groups: list[Group] = []
    for folder, ps in by_dir.items():
        sets = _connected([keys.get(p, frozenset()) for p in ps])
        for indices in sets:
            members = [ps[i] for i in indices]
            stems = "+".join(capture_stem(p.name) or p.name for p in members)
            name = f"{_folder_name(folder)}/{stems}"
            how = "pairing" if len(members) > 1 else "alone"
            groups.append(_group(name, how, [Member(str(p), "capture") for p in members]))
    return groups


def _connected(keys: list[frozenset]) -> list[list[int]]:
    """Indices that share a key, directly or through others (union-find), each set in index order."""
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict = {}
    for i, ks in enumerate(keys):
        for key in ks:
            parent[root(i)] = root(owner.setdefault(key, i))
    sets: dict[int, list[int]] = {}
    for i in range(len(keys)):
        sets.setdefault(root(i), []).append(i)
    return list(sets.values())


def connection_keys(path: str, max_packets: int | None = None, max_memory: int | None = None) -> frozenset:
    """The connections a capture saw, as pairing keys: (server address, server port, client initial
    sequence number) of each connection whose SYN it holds. Empty when it cannot be read: the capture
    then stands alone, and its own analysis says what is wrong with it."""
    from ..errors import PcapmtuError
    from ..ingest.capture import read

    try:
        flows = read(path, keep_packets=False, max_packets=max_packets, max_memory=max_memory).flows
    except (PcapmtuError, OSError):
        return frozenset()
    seen = flows[flows["isn_client"] >= 0]
    return frozenset(
        zip(
            seen["server_ip"].astype(str),
            seen["server_port"].astype(int),
            seen["isn_client"].astype(int),
            strict=True,
        )
    )


# ----------------------------------------------------------------------------------------- the manifest
MANIFEST_KEYS = {"name", "host", "container", "containers", "server", "captures", "host_mtu", "container_mtu"}


def read_manifest(path: Path) -> list[Group]:
    """A manifest's groups. Its shape (docs/scan.md): {"groups": [{"name": ..., "host": FILE,
    "containers": [FILE...], "server": FILE, "captures": [FILE...], "host_mtu": N, "container_mtu": N}]},
    files relative to the manifest's directory. A manifest that is not this shape is a usage error: the
    scan would otherwise group the fleet differently from what its author wrote."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a readable JSON manifest ({exc})") from None
    items = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise UsageError(f'{path}: a manifest holds {{"groups": [...]}} with at least one group')
    base = path.parent
    groups = []
    for n, item in enumerate(items, start=1):
        where = f"{path}: group {n}"
        if not isinstance(item, dict) or set(item) - MANIFEST_KEYS:
            extra = sorted(set(item) - MANIFEST_KEYS) if isinstance(item, dict) else []
            raise UsageError(f"{where}: unknown keys {extra}" if extra else f"{where}: not an object")
        members: list[Member] = []
        for role, key, many in (
            ("host", "host", False),
            ("container", "container", False),
            ("container", "containers", True),
            ("server", "server", False),
            ("capture", "captures", True),
        ):
            value = item.get(key)
            files = [] if value is None else value if many else [value]
            if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
                kind = "a list of file names" if many else "a file name"
                raise UsageError(f"{where}: {key} must be {kind}")
            members += [Member(str(base / f), role) for f in files]
        if not members:
            raise UsageError(f"{where}: names no capture")
        facts = {}
        for key in ("host_mtu", "container_mtu"):
            value = item.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 68):
                raise UsageError(f"{where}: {key} must be an MTU in bytes")
            facts[key] = value
        name = item.get("name")
        if name is not None and not isinstance(name, str):
            raise UsageError(f"{where}: name must be text")
        groups.append(_group(name or f"{_folder_name(base)}#{n}", "manifest", members, **facts))
    return groups
