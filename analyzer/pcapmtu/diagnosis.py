"""Stage 7: from findings to a verdict per connection and overall, with a confidence and an explanation.

A connection is judged once: a container connection together with its host-side twin (matched across NAT),
or a host connection of the host's own, or a connection of a lone capture. Findings that imply a verdict
(`Rule.implies`) decide it, strongest first; a connection that stalled or failed with no such finding is
`inconclusive`; everything else is `healthy`.
"""

from __future__ import annotations

import pandas as pd

from . import fix as fixes
from .context import Context
from .detectors import RULES
from .detectors._util import endpoint, service
from .results import Diagnosis, Finding

RANK = {"mtu_blackhole": 5, "mtu_blackhole_recovered": 4, "not_mtu": 3, "inconclusive": 2, "healthy": 1}
REASON_RANK = {"filtered": 6, "refused": 5, "lossy_link": 4, "server_slow": 3, "reset": 2, "no_response": 1}
REASON_TEXT = {
    "filtered": "SYNs are never answered: a firewall or routing problem",
    "refused": "the server refuses the connection (RST): nothing listens there",
    "lossy_link": "packets of every size are lost at random: a lossy link, full-size packets still get through",
    "server_slow": "the server is slow to answer; nothing is lost",
    "reset": "connections are reset",
    "no_response": "the server never answers the request",
}
VERDICT_COLUMNS = [
    "capture",
    "conn",
    "host_conn",
    "service",
    "client",
    "server",
    "verdict",
    "reason",
    "codes",
]


def verdicts(ctx: Context, findings: list[Finding]) -> pd.DataFrame:
    """One row per connection (container side first), with its verdict and the codes that decided it."""
    by_flow: dict[tuple[str, int], list[Finding]] = {}
    for f in findings:
        if f.conn >= 0:
            by_flow.setdefault((f.capture, f.conn), []).append(f)
    rows = []
    for role in ctx.container_roles + ([ctx.far_role] if ctx.far_role else []):
        flows = ctx.judged(role)
        for flow in flows.itertuples():
            own = by_flow.get((role, int(flow.conn)), [])
            twin = (
                by_flow.get((ctx.far_role, int(flow.twin_conn)), [])
                if role != ctx.far_role and flow.twin_conn >= 0
                else []
            )
            verdict, reason, codes = _judge(flow, own + twin, ctx)
            rows.append((role, int(flow.conn), int(flow.twin_conn), service(flow),
                         endpoint(flow.client_ip, flow.client_port), endpoint(flow.server_ip, flow.server_port),
                         verdict, reason, ",".join(codes)))  # fmt: skip
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def _judge(flow, found: list[Finding], ctx: Context) -> tuple[str, str, list[str]]:
    best, reason, codes = "", "", []
    for f in found:
        rule = RULES.get(f.code)
        if rule is None or not rule.implies:
            continue
        codes.append(f.code)
        better = RANK[rule.implies] > RANK.get(best, 0)
        same = rule.implies == best == "not_mtu" and REASON_RANK.get(rule.reason, 0) > REASON_RANK.get(
            reason, 0
        )
        if better or same:
            best, reason = rule.implies, rule.reason
    if best:
        return best, reason, sorted(set(codes))
    trouble = [f.code for f in found if f.code in ("S001", "T001")]
    stalled = (
        flow.handshake_ok
        and flow.request_sent
        and flow.stalled_s >= ctx.th.stall_s
        and flow.state != "closed"
    )
    if trouble or stalled:
        return "inconclusive", "", sorted(set(trouble))
    return "healthy", "", []


def overall(ctx: Context, table: pd.DataFrame, findings: list[Finding]) -> Diagnosis:
    """The verdict for the whole incident, its confidence, the explanation and the fix."""
    if not len(table):
        return Diagnosis(
            "inconclusive", 0.2, "", "The captures hold no TCP connections to judge.", None, None, None
        )
    ranked = table.assign(rank=table["verdict"].map(RANK)).sort_values("rank", ascending=False, kind="stable")
    verdict = ranked.iloc[0]["verdict"]
    chosen = ranked[ranked["verdict"] == verdict]
    reason = ""
    if verdict == "not_mtu":
        reason = max(chosen["reason"], key=lambda r: REASON_RANK.get(r, 0))
    codes = {f.code for f in findings}
    ipv = _ipv(ctx, chosen.iloc[0])
    path = ctx.path.get(ipv)
    path_mtu = path.value if path else None
    clamp = _clamp_after(findings)
    direction = "upload" if any(f.code == "B002" for f in findings) else "download"
    fix = fixes.compute(verdict, path_mtu if verdict.startswith("mtu") else None, ipv, clamp, direction)
    confidence = _confidence(ctx, verdict, codes, chosen)
    text = _explain(ctx, verdict, reason, chosen, table, findings, path, clamp)
    mss = (path_mtu - (40 if ipv == 4 else 60)) if (path_mtu and verdict.startswith("mtu")) else None
    return Diagnosis(verdict, confidence, reason, text, path_mtu, mss, fix)


def _ipv(ctx: Context, row) -> int:
    return int(ctx.flow(row["capture"], row["conn"])["ipv"])


def _clamp_after(findings: list[Finding]) -> int | None:
    for f in findings:
        if f.code == "M002":
            return int(f.evidence["mss_after"])
    return None


def _confidence(ctx: Context, verdict: str, codes: set[str], chosen: pd.DataFrame) -> float:
    two_sides = ctx.far is not None
    if verdict in ("mtu_blackhole", "mtu_blackhole_recovered"):
        score = 0.6 + 0.1 * len(codes & {"S001", "T001", "M001", "M004", "X002"}) + (0.1 if two_sides else 0)
        return round(min(score, 0.97 if two_sides else 0.8), 2)
    if verdict == "not_mtu":
        return 0.85 if two_sides else 0.75
    if verdict == "healthy":
        return 0.9 if two_sides else 0.7
    return 0.3


def _explain(ctx, verdict, reason, chosen, table, findings, path, clamp) -> str:
    n_total = len(table)
    services = sorted(set(chosen["service"]))
    listing = ", ".join(services[:4]) + (f" and {len(services) - 4} more" if len(services) > 4 else "")
    if verdict == "healthy":
        extra = (
            f" An MSS clamp to {clamp} on the docker host keeps packets within the path MTU." if clamp else ""
        )
        icmp = [f for f in findings if f.code == "M003"]
        if icmp:
            extra += f" Path MTU discovery works: {icmp[0].message}."
        return f"No MTU problem: all {n_total} connections completed or are healthy.{extra}"
    if verdict == "not_mtu":
        return (f"Not an MTU problem: {REASON_TEXT.get(reason, reason)} ({listing}). Packet sizes are not "
                "what separates the failing connections from the working ones.")  # fmt: skip
    if verdict == "inconclusive":
        return (f"Something is wrong with {listing}, but the captures do not show why: connections stall "
                "without evidence about packet sizes. Capture on both the host uplink and in the container, "
                "and let the failing request run into its timeout.")  # fmt: skip
    key = "B003" if verdict == "mtu_blackhole_recovered" else None
    main = next(
        (f for f in findings if (f.code == key) or (key is None and f.code in ("B001", "B002"))), None
    )
    parts = []
    if main is not None:
        ev = main.evidence
        parts.append(f"{main.message}.")
        if main.code == "B001":
            mtu_c = ctx.facts.container_mtu or (ev["mss_client"] + 40 if ev.get("mss_client") else None)
            parts.append(
                f"The container advertised MSS {ev['mss_client']}"
                + (f" (interface MTU {mtu_c})" if mtu_c else "")
                + (f", the server saw MSS {ev['mss_at_server']}" if ev["mss_at_server"] != ev["mss_client"] else "")
                + f", so the server sends {ev['server_full']}-byte packets; "
                + (f"the path carries at most {path.value} bytes ({path.decided_by})." if path and path.value
                   else f"the largest packet that got through was {ev['largest_delivered']} bytes.")
            )  # fmt: skip
            parts.append(f"The packets die {ev['where']}.")
            said = path is not None and path.value
            because = [b for b in ev["because"] if not (said and b.startswith("the path carries"))]
            parts.append(f"Why this is MTU: {'; '.join(because or ev['because'])}.")
    parts.append(f"Affected: {listing} ({len(chosen)} of {n_total} connections).")
    healthy = table[table["verdict"] == "healthy"]
    if len(healthy):
        who = {"host": "from the host itself", "server": "to the server, from other clients"}
        working = sorted(
            {
                f"{s} ({who.get(c, 'from the ' + c)})"
                for s, c in zip(healthy["service"], healthy["capture"], strict=True)
            }
        )
        parts.append(f"Working meanwhile: {', '.join(working[:4])}.")
    if len(ctx.captures) == 1:
        parts.append("Only one capture was given: with the other side's capture too, pcapmtu could say where "
                     "on the path the packets die and be more certain.")  # fmt: skip
    if main is not None and main.frames:
        parts.append(f"Evidence: {main.capture} capture frames {', '.join(map(str, main.frames[:8]))} "
                     f"(Wireshark: {main.wireshark_filter}).")  # fmt: skip
    return " ".join(parts)
