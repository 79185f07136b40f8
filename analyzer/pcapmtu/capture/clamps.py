"""The MSS clamp rules the host has: iptables and ip6tables mangle rules with TCPMSS, nftables rules that set
the TCP maxseg option. Recorded so that `analyze` knows about a clamp that is already there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

from .namespaces import CHILD_ENV

SOURCES = (
    ("iptables-save", "-t", "mangle"),
    ("ip6tables-save", "-t", "mangle"),
    ("nft", "list", "ruleset"),
)
SET_MSS = re.compile(r"--set-mss (\d+)|maxseg size set (\d+)\b")
TO_PMTU = re.compile(r"--clamp-mss-to-pmtu|maxseg size set rt mtu")
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Clamp:
    """One rule that rewrites the MSS of SYNs (`clamps[]` in the metadata)."""

    source: str  # the command that listed it: iptables-save, ip6tables-save, nft
    rule: str  # the rule as that command prints it
    mss: int | None  # the MSS it sets; None when it clamps to the route MTU
    to_pmtu: bool  # --clamp-mss-to-pmtu / `maxseg size set rt mtu`

    def as_dict(self) -> dict:
        return asdict(self)


# iptables-nft keeps its rules in nftables tables of these names (families ip and ip6): `nft list ruleset`
# shows them again, translated. Where iptables is that variant they are counted once, from iptables-save.
XTABLES = ("filter", "mangle", "nat", "raw", "security")
TABLE = re.compile(r"^table (\w+) (\S+) \{")


def find() -> tuple[list[Clamp], list[str]]:
    """The host's clamp rules, and the sources that could not be read (tool missing or refused)."""
    clamps: list[Clamp] = []
    unread: list[str] = []
    skip_xtables = _iptables_is_nft()
    for cmd in SOURCES:
        if shutil.which(cmd[0]) is None:
            unread.append(f"{cmd[0]}: not installed")
            continue
        try:
            proc = subprocess.run(
                list(cmd), capture_output=True, text=True, timeout=TIMEOUT_S, env=CHILD_ENV, check=False
            )
        except subprocess.TimeoutExpired:
            unread.append(f"{cmd[0]}: no answer in {TIMEOUT_S:g} s")
            continue
        if proc.returncode != 0:
            unread.append(f"{cmd[0]}: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
            continue
        clamps += parse(cmd[0], proc.stdout, skip_xtables=skip_xtables)
    return clamps, unread


def _iptables_is_nft() -> bool:
    """`iptables -V` says `(nf_tables)` for iptables-nft (Debian's default), `(legacy)` otherwise."""
    if shutil.which("iptables") is None:
        return False
    try:
        proc = subprocess.run(
            ["iptables", "-V"], capture_output=True, text=True, timeout=TIMEOUT_S, env=CHILD_ENV, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return "nf_tables" in proc.stdout


def parse(source: str, text: str, skip_xtables: bool = False) -> list[Clamp]:
    """Clamp rules in the output of iptables-save or `nft list ruleset`; with `skip_xtables`, not the nft
    rules in iptables-nft's own tables (iptables-save lists those)."""
    found = []
    table: tuple[str, str] = ("", "")
    for line in text.splitlines():
        rule = line.strip()
        if m := TABLE.match(rule):
            table = (m.group(1), m.group(2))
        if "TCPMSS" not in rule and "maxseg size set" not in rule:
            continue
        if skip_xtables and source == "nft" and table[0] in ("ip", "ip6") and table[1] in XTABLES:
            continue
        mss = SET_MSS.search(rule)
        value = next((int(g) for g in mss.groups() if g), None) if mss else None
        found.append(Clamp(source, rule, value, bool(TO_PMTU.search(rule))))
    return found
