"""From findings to a verdict per connection and overall, with a confidence and an explanation.

A connection is judged once: a container connection together with its host-side twin (matched across NAT),
or a host connection of the host's own, or a connection of a lone capture. Findings that imply a verdict
(`Rule.implies`) decide it, strongest first; a connection that stalled or failed with no such finding is
`inconclusive`; everything else is `healthy`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evidence import endpoints, named
from ..results import Diagnosis, Finding, Reason, Verdict
from . import fix as fixes
from . import overlay, platforms
from .context import Context, records
from .detectors import RULES
from .path_mtu import cited_for

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


# What verdicts() and _judge() read of a judged flow (service() and endpoint() included).
JUDGED_BY = [
    "conn",
    "twin_conn",
    "name",
    "client_ip",
    "client_port",
    "server_ip",
    "server_port",
    "handshake_ok",
    "request_sent",
    "stalled_s",
    "owed_stall",
    "state",
    "response_complete",
    "unanswered",
    "tail_idle_s",
]


def verdicts(ctx: Context, findings: list[Finding]) -> pd.DataFrame:
    """One row per connection (container side first), with its verdict and the codes that decided it.

    Column by column: most connections have no finding, and their verdict follows from a few of their
    columns (`_quiet_rows`); `_judge` weighs the findings of the others, one connection at a time."""
    by_flow: dict[tuple[str, int], list[Finding]] = {}
    for f in findings:
        if f.conn >= 0:
            by_flow.setdefault((f.capture, f.conn), []).append(f)
    out: dict[str, list] = {name: [] for name in VERDICT_COLUMNS}
    for role in ctx.container_roles + ctx.extra_roles + ([ctx.far_role] if ctx.far_role else []):
        flows = ctx.judged(role)[JUDGED_BY]  # the columns read here: all ~170 cost 10x more
        conns, twins = flows["conn"].tolist(), flows["twin_conn"].tolist()
        found = _found_per_row(ctx, role, conns, twins, by_flow)
        judged = dict(zip(found, records(flows.iloc[list(found)]), strict=True)) if found else {}
        stalled, healthy = str(Verdict.INCONCLUSIVE), str(Verdict.HEALTHY)
        verdict_of = [stalled if q else healthy for q in _quiet_rows(flows, ctx.th.stall_s).tolist()]
        reason_of, codes_of = [""] * len(flows), [""] * len(flows)
        for i, flow in judged.items():
            verdict, reason, codes = _judge(flow, found[i], ctx)
            verdict_of[i], reason_of[i], codes_of[i] = str(verdict), str(reason or ""), ",".join(codes)
        out["verdict"] += verdict_of
        out["reason"] += reason_of
        out["codes"] += codes_of
        out["capture"] += [role] * len(flows)
        out["conn"] += [int(c) for c in conns]
        out["host_conn"] += [int(t) for t in twins]
        server = endpoints(flows["server_ip"].tolist(), flows["server_port"].tolist())
        out["service"] += named(flows["name"].tolist(), server)
        out["client"] += endpoints(flows["client_ip"].tolist(), flows["client_port"].tolist())
        out["server"] += server
    if not out["capture"]:
        return pd.DataFrame([], columns=VERDICT_COLUMNS)
    return pd.DataFrame(out, columns=VERDICT_COLUMNS)


def _found_per_row(
    ctx: Context, role: str, conns: list, twins: list, by_flow: dict[tuple[str, int], list[Finding]]
) -> dict[int, list[Finding]]:
    """Row position -> the findings about that connection, its own and (on the client side) its far twin's,
    for the rows that have any."""
    far = ctx.far_role
    out: dict[int, list[Finding]] = {}
    for i, (conn, twin) in enumerate(zip(conns, twins, strict=True)):
        own = by_flow.get((role, int(conn)))
        other = by_flow.get((far, int(twin))) if role != far and twin >= 0 else None
        if own or other:
            out[i] = (own or []) + (other or [])
    return out


def _quiet(handshake_ok, request_sent, stalled_s, owed_stall, state, response_complete, unanswered,
           tail_idle_s, stall_s, explained=False) -> bool:  # fmt: skip
    """Whether a connection stalled or went unanswered: inconclusive, not healthy, though no rule decided it."""
    stalled = (
        handshake_ok
        and request_sent
        and stalled_s >= stall_s
        and owed_stall  # an idle keep-alive connection owes nothing: not a stall
        and not explained
        and state != "closed"
        and not response_complete
    )
    return bool(stalled or (handshake_ok and unanswered and tail_idle_s >= stall_s))


def _quiet_rows(flows: pd.DataFrame, stall_s: float) -> np.ndarray:
    """`_quiet` of every row at once (none explained), for the connections no finding speaks of."""

    def col(name: str) -> np.ndarray:
        return flows[name].to_numpy()

    ok = col("handshake_ok").astype(bool)
    stalled = (
        ok
        & col("request_sent").astype(bool)
        & (col("stalled_s") >= stall_s)
        & col("owed_stall").astype(bool)
        & (flows["state"] != "closed").to_numpy(dtype=bool)
        & ~col("response_complete").astype(bool)
    )
    return stalled | (ok & col("unanswered").astype(bool) & (col("tail_idle_s") >= stall_s))


def _judge(flow, found: list[Finding], ctx: Context) -> tuple[Verdict, Reason | None, list[str]]:
    best: Verdict | None = None
    reason: Reason | None = None
    codes = []
    for f in found:
        rule = RULES.get(f.code)
        if rule is None or rule.implies is None:
            continue
        codes.append(f.code)
        better = best is None or rule.implies.rank > best.rank
        rank = rule.reason.rank if rule.reason else 0
        same = rule.implies == best == Verdict.NOT_MTU and rank > (reason.rank if reason else 0)
        if better or same:
            best, reason = rule.implies, rule.reason
    if best is not None:
        return best, reason, sorted(set(codes))
    # a stall that PMTUD itself cost (B004: the sender re-sent smaller and was acknowledged) is explained
    explained = any(f.code == "B004" for f in found)
    trouble = [f.code for f in found if f.code in ("S001", "T001") and not explained]
    stalled = _quiet(
        flow.handshake_ok,
        flow.request_sent,
        flow.stalled_s,
        flow.owed_stall,
        flow.state,
        flow.response_complete,
        flow.unanswered,
        flow.tail_idle_s,
        ctx.th.stall_s,
        explained,
    )
    if trouble or stalled:
        return Verdict.INCONCLUSIVE, None, sorted(set(trouble))
    return Verdict.HEALTHY, None, []


def overall(ctx: Context, table: pd.DataFrame, findings: list[Finding]) -> Diagnosis:
    """The verdict for the whole incident, its confidence, the explanation and the fix."""
    if not len(table):
        return Diagnosis(
            Verdict.INCONCLUSIVE, 0.2, "", "The captures hold no TCP connections to judge.", None, None, None
        )
    ranked = table.assign(rank=table["verdict"].map(Verdict.ranks()))
    ranked = ranked.sort_values("rank", ascending=False, kind="stable")
    verdict = Verdict(ranked.iloc[0]["verdict"])
    chosen = ranked[ranked["verdict"] == verdict]
    reason: Reason | str = ""
    if verdict == Verdict.NOT_MTU:
        reason = max((Reason(r) for r in chosen["reason"] if r), key=lambda r: r.rank, default="")
    codes = {f.code for f in findings}
    ipv = _ipv(ctx, chosen.iloc[0])
    path = ctx.path.get(ipv)
    path_mtu = path.value if path else None
    clamp = _clamp_after(findings)
    direction = "upload" if any(f.code == "B002" for f in findings) else "download"
    mtu_verdict = verdict.is_mtu
    network = _network(ctx, chosen.iloc[0]) if mtu_verdict else None
    fix = fixes.compute(
        verdict,
        path_mtu if mtu_verdict else None,
        ipv,
        clamp,
        direction,
        path.low if path and mtu_verdict else None,
        path.high if path and mtu_verdict else None,
        network,
        ctx.facts.clamp_rules,
    )
    confidence, factors = _confidence(ctx, verdict, codes, chosen)
    text = _explain(ctx, verdict, reason, chosen, table, findings, path, clamp)
    mss = (path_mtu - (40 if ipv == 4 else 60)) if (path_mtu and verdict.is_mtu) else None
    return Diagnosis(verdict, confidence, reason, text, path_mtu, mss, fix, tuple(factors))


def _network(ctx: Context, row) -> platforms.Network:
    """The platform and overlay the fix speaks for; the failing connection's server tells whether its packets
    crossed the tunnel."""
    server = str(ctx.flow(row["capture"], row["conn"])["server_ip"])
    return platforms.decide(
        ctx.facts.platform,
        overlay.overlays(ctx.captures, server),
        overlay.cnis(ctx.captures),
        recorded=ctx.facts.recorded_platform,
    )


def _ipv(ctx: Context, row) -> int:
    return int(ctx.flow(row["capture"], row["conn"])["ipv"])


def _clamp_after(findings: list[Finding]) -> int | None:
    for f in findings:
        if f.code == "M002":
            return int(f.evidence["mss_after"])
    return None


CORROBORATING = ("S001", "H001", "T001", "M001", "M004", "X002", "B005")
CAP_WHY = "the most this kind of evidence supports"  # a ceiling, not a doubt
HEALTHY_CAP_AFTER_STALL = 0.5  # healthy is never above this while a request went unanswered


def _confidence(
    ctx: Context, verdict: Verdict, codes: set[str], chosen: pd.DataFrame
) -> tuple[float, list[dict]]:
    """The confidence and what raised and lowered it, as {"why", "delta"} items that add up to it."""
    two_sides = ctx.far is not None
    factors: list[tuple[str, float]] = []
    sides = "two capture points of the same connections" if two_sides else "one capture point only"
    if verdict.is_mtu:
        factors.append(("size evidence of an MTU failure", 0.6))
        factors += [(f"{c} ({RULES[c].name}) agrees", 0.1) for c in CORROBORATING if c in codes]
        factors.append((sides, 0.1 if two_sides else 0.0))
        cap = 0.97 if two_sides else 0.8
    elif verdict == Verdict.NOT_MTU:
        factors += [
            ("a cause other than size explains the failures", 0.75),
            (sides, 0.1 if two_sides else 0.0),
        ]
        cap = 0.85
    elif verdict == Verdict.HEALTHY:
        factors += [
            ("every connection completed or is idle with nothing owed", 0.7),
            (sides, 0.2 if two_sides else 0.0),
        ]
        cap = 0.9
    else:
        factors.append(("a stall the captures cannot explain", 0.3))
        cap = 0.3
    estimated = ctx.flow_values(chosen["capture"], chosen["conn"], "full_estimated")
    if verdict != Verdict.INCONCLUSIVE and any(bool(e) for e in estimated):
        factors.append(("judged without the handshake: MSS and full size are estimates", -0.15))
    damaged = [r for r, cap_ in ctx.captures.items() if cap_.skipped_bytes]
    if damaged:
        factors.append((f"the {', '.join(damaged)} capture is damaged", -0.1))
    unplaced = [r for r, v in ctx.vantage.items() if v.position == "unknown"]
    if unplaced and verdict != Verdict.INCONCLUSIVE:
        factors.append((f"where the {', '.join(unplaced)} capture was taken is unknown", -0.05))
    if verdict == Verdict.HEALTHY:
        silent = sum(int(_silent_after_handshake(ctx.judged(r), ctx).sum()) for r in ctx.captures)
        if silent:
            factors.append(
                (
                    f"{silent} connection(s) completed the handshake and carried no data before the "
                    "capture ended: unused, or their first data never arrived here",
                    -0.2,
                )
            )
        sizeless = sum(int(_sizeless(ctx.judged(r)).sum()) for r in ctx.captures)
        total = sum(d for _, d in factors)
        if sizeless and total > HEALTHY_CAP_AFTER_STALL:
            factors.append(
                (
                    f"the MSS of {sizeless} connection(s) that carried data is not in the captures (a snap "
                    "length shorter than the TCP header cuts the option off): their packet sizes cannot be judged",
                    HEALTHY_CAP_AFTER_STALL - total,
                )
            )
        glimpsed = sum(int(_glimpsed(ctx.judged(r)).sum()) for r in ctx.captures)
        if glimpsed:
            factors.append(
                (
                    f"{glimpsed} connection(s) captured without their handshake carried no data here: the "
                    "capture holds too little of them to judge",
                    -0.2,
                )
            )
        stalled = sum(int(_stalled_after_request(ctx.judged(r), ctx).sum()) for r in ctx.captures)
        pending = sum(int(_pending_at_end(ctx.judged(r), ctx).sum()) for r in ctx.captures)
        for count, what in (
            (stalled, "stalled after a request and never finished"),
            (pending, "still waited for an answer when the capture ended: how they ended is not in it"),
        ):
            total = sum(d for _, d in factors)
            if count and total > HEALTHY_CAP_AFTER_STALL:
                factors.append((f"{count} connection(s) {what}", HEALTHY_CAP_AFTER_STALL - total))
    total = sum(d for _, d in factors)
    if total > cap:
        factors.append((CAP_WHY, cap - total))
    elif total < 0.05:
        factors.append(("the least any verdict is given", 0.05 - total))
    value = round(max(min(total, cap), 0.05), 2)
    return value, [{"why": w, "delta": round(d, 2)} for w, d in factors]


def _silent_after_handshake(f: pd.DataFrame, ctx: Context) -> pd.Series:
    """Open connections that carried no data at all: unused, or their first data never arrived here."""
    return (
        f["handshake_ok"]
        & f["state"].isin(["open", "closing"])
        & (f["bytes_c2s"] == 0)
        & (f["bytes_s2c"] == 0)
    )


def _sizeless(f: pd.DataFrame) -> pd.Series:
    """Connections with their handshake and data but no full size: no MSS option in the captured SYNs."""
    return f["handshake_ok"] & (f["server_full"] <= 0) & ((f["bytes_s2c"] > 0) | (f["bytes_c2s"] > 0))


def _glimpsed(f: pd.DataFrame) -> pd.Series:
    """Connections of which the capture holds neither the handshake nor any data (a last ACK, a FIN)."""
    return (
        ~f["handshake_ok"]
        & f["state"].isin(["open", "closing"])
        & (f["bytes_c2s"] == 0)
        & (f["bytes_s2c"] == 0)
    )


def _stalled_after_request(f: pd.DataFrame, ctx: Context) -> pd.Series:
    owed = f["owed_stall"] & (f["stalled_s"] >= ctx.th.stall_s) & f["stalled_after_request"]
    unanswered = f["unanswered"] & (f["tail_idle_s"] >= ctx.th.stall_s)
    return f["request_sent"] & (f["state"] != "closed") & ~f["response_complete"] & (owed | unanswered)


def _pending_at_end(f: pd.DataFrame, ctx: Context) -> pd.Series:
    """Connections whose answer was still owed when the capture ended, too soon to call it a stall, that had
    not yet carried a full-size packet: a SYN younger than its first timeout, a request or an HTTP response
    in progress. The failing one of an incident looks like this when the capture was stopped too early."""
    syn = (f["state"] == "no_answer") & (f["followed_s"] < ctx.th.stall_s)
    owed = f["unanswered"] | (f["http_owed_s2c"] > 0)
    answer = f["request_sent"] & f["state"].isin(["open", "closing"]) & ~f["response_complete"] & owed
    return syn | (answer & ~(f["full_delivered_s2c"] | f["full_delivered_c2s"]))


def _unexplained(ctx: Context, row, findings: list[Finding]) -> str:
    """What went wrong on one inconclusive connection, in a sentence."""
    flow = ctx.flow(row.capture, row.conn)
    own = {f.code: f for f in findings if f.capture == row.capture and f.conn == row.conn}
    for code in ("T005", "H001", "S001", "T001"):
        if code in own:
            return own[code].message
    if flow["http_owed_s2c"] > 0 and flow["stalled_s"] >= ctx.th.stall_s:
        return (
            f"{row.service}: the HTTP response stopped for {float(flow['stalled_s']):.1f} s with "
            f"{int(flow['http_owed_s2c'])} bytes of it still owed, and never finished"
        )
    if flow["unanswered"]:
        return (
            f"{row.service}: the request was acknowledged and still had no answer "
            f"{float(flow['tail_idle_s']):.1f} s later, when the capture ended"
        )
    owed = {"network": "data was in flight and unacknowledged", "server": "the server owed the answer"}
    return (
        f"{row.service}: stalled {float(flow['stalled_s']):.1f} s while "
        f"{owed.get(flow['idle_turn'], 'nothing moved')}, and never finished"
    )


def _next_step(ctx: Context, chosen: pd.DataFrame) -> str:
    """The capture to take next, from what these captures lack."""
    steps = []
    handshake = ctx.flow_values(chosen["capture"], chosen["conn"], "handshake_ok")
    full = ctx.flow_values(chosen["capture"], chosen["conn"], "server_full")
    if any(not ok for ok in handshake):
        steps.append(
            "start the captures before the failing connection opens, so its handshake (the MSS) is in them"
        )
    if any(bool(ok) and int(size) <= 0 for ok, size in zip(handshake, full, strict=True)):
        steps.append("capture whole packets (`tcpdump -s 0`), so that the SYNs' MSS option is in them")
    where = {v.position for v in ctx.vantage.values()}
    missing = [
        w
        for p, w in (
            ("client", "in the container (or on the client)"),
            ("middle", "on the docker host's uplink"),
            ("server", "on the server (if you can)"),
        )
        if p not in where
    ]
    if missing:
        steps.append("capture at the same time " + " and ".join(missing))
    steps.append("let the failing request run into its timeout while the captures run")
    return "; ".join(steps) + "."


def _explain(ctx: Context, verdict: Verdict, reason, chosen, table, findings, path, clamp) -> str:
    n_total = len(table)
    services = sorted(set(chosen["service"]))
    listing = ", ".join(services[:4]) + (f" and {len(services) - 4} more" if len(services) > 4 else "")
    if verdict == Verdict.HEALTHY:
        extra = (
            f" An MSS clamp to {clamp} on the docker host keeps packets within the path MTU." if clamp else ""
        )
        works = [f for f in findings if f.code == "B004"]
        icmp = [f for f in findings if f.code == "M003"]
        if works:
            extra += f" Path MTU discovery works: {works[0].message}."
        elif icmp:
            extra += f" ICMP size reports are seen: {icmp[0].message}."
        pending = sum(int(_pending_at_end(ctx.judged(r), ctx).sum()) for r in ctx.captures)
        if pending == n_total:
            return (
                f"No MTU problem in what the captures show, but none of the {n_total} connection(s) finished: "
                "each still waited for an answer when the capture ended. If one was the failing request, capture "
                f"again and let it run into its timeout.{extra}"
            )
        if pending:
            return (
                f"No MTU problem in what the captures show: {n_total - pending} of {n_total} connections "
                f"completed or are healthy, {pending} still waited for an answer when the capture ended. If that "
                f"was the failing request, capture again and let it run into its timeout.{extra}"
            )
        return f"No MTU problem: all {n_total} connections completed or are healthy.{extra}"
    if verdict == Verdict.NOT_MTU:
        instead = Reason(reason).words if reason else "a cause other than size"
        return (
            f"Not an MTU problem: {instead} ({listing}). Packet sizes are not "
            "what separates the failing connections from the working ones."
        )
    if verdict == Verdict.INCONCLUSIVE:
        seen = [_unexplained(ctx, row, findings) for row in chosen.itertuples(index=False)]
        more = f" and {len(seen) - 3} more" if len(seen) > 3 else ""
        return (
            f"Something is wrong that the captures cannot explain: {'; '.join(seen[:3])}{more}. "
            f"Next: {_next_step(ctx, chosen)}"
        )
    key = "B003" if verdict == Verdict.MTU_BLACKHOLE_RECOVERED else None
    main = next(
        (f for f in findings if (f.code == key) or (key is None and f.code in ("B001", "B002", "B005"))), None
    )
    parts = []
    if main is not None:
        ev = main.evidence
        parts.append(f"{main.message}.")
        if main.code == "B005":
            parts.append(
                f"The path carries at most {main.evidence['mtu']} bytes, as the ICMP says. {main.hint}"
            )
        if main.code == "B001":
            mtu_c = ctx.facts.container_mtu or (ev["mss_client"] + 40 if ev.get("mss_client") else None)
            server_ip = ctx.flow(main.capture, main.conn)["server_ip"]
            # evidence about this connection's server only: an ICMP about another server is not cited here
            cite_path = cited_for(path, server_ip) if path is not None else ""
            parts.append(
                f"The {'container' if main.capture.startswith('container') else 'client'} "
                f"advertised MSS {ev['mss_client']}"
                + (f" (interface MTU {mtu_c})" if mtu_c else "")
                + (
                    f", the server saw MSS {ev['mss_at_server']}"
                    if ev["mss_at_server"] != ev["mss_client"]
                    else ""
                )
                + f", so the server sends {ev['server_full']}-byte packets; "
                + (
                    f"the path carries at most {path.value} bytes ({cite_path})."
                    if cite_path
                    else f"the largest packet that got through was {ev['largest_delivered']} bytes."
                )
            )
            parts.append(f"The packets die {ev['where']}.")
            said = cite_path
            because = [b for b in ev["because"] if not (said and b.startswith("the path carries"))]
            parts.append(f"Why this is MTU: {'; '.join(because or ev['because'])}.")
    parts.append(f"Affected: {listing} ({len(chosen)} of {n_total} connections).")
    healthy = table[table["verdict"] == Verdict.HEALTHY]
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
        parts.append(
            "Only one capture was given: with the other side's capture too, pcapmtu could say where "
            "on the path the packets die and be more certain."
        )
    if main is not None and main.frames:
        parts.append(
            f"Evidence: {main.capture} capture frames {', '.join(map(str, main.frames[:8]))} "
            f"(Wireshark: {main.wireshark_filter})."
        )
    return " ".join(parts)
