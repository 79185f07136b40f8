"""H: HTTP/1.x responses that never finished, by their own framing."""

from __future__ import annotations

from ...evidence import first_frames, flow_filter, service
from ...results import Severity, Verdict
from ..context import Context, records
from . import Hit, rule


@rule(
    code="H001",
    name="http-response-unfinished",
    severity=Severity.WARNING,
    message="{service}: {owed} bytes of the HTTP response ({status}) were still owed when {ending}, and no "
    "full-size ({full}-byte) packet from the server was delivered in the {role} capture",
    fix="Capture again and let the request run into its timeout, with a capture on the docker host's uplink "
    "too: whether the server's full-size packets are lost on the way then shows.",
    why="A download that hangs after its headers is on the client's turn at the transport level, like an idle "
    "keep-alive connection, yet its headers (Content-Length, chunk sizes) say the server owes more. When what "
    "it owes needs full-size packets and none arrived, a black hole looks exactly like this; the capture does "
    "not show the rest, so the connection is never judged healthy.",
    example={
        "service": "api.example (198.18.0.10:80)",
        "status": 200,
        "owed": 60000,
        "ending": "the client closed the connection 8.0 s after the server's last data",
        "full": 1500,
        "role": "container",
    },
    references=("RFC 9112", "RFC 2923"),
    implies=Verdict.INCONCLUSIVE,
)
def http_response_unfinished(ctx: Context):
    for role in ctx.captures:
        f = ctx.judged(role)
        payload = f["server_full"] - f["hdr"]
        cand = f[
            f["handshake_ok"]
            & (f["server_full"] > 0)
            & (f["http_owed_s2c"] >= payload)
            & ~f["full_delivered_s2c"]
        ]
        for flow in records(cand):
            p = ctx.conn_packets(role, int(flow.conn), ["frame", "ts", "dir", "payload_len", "tcp_flags"])
            s2c = p[(p["dir"] == 1) & (p["payload_len"] > 0)]
            closing = p[(p["dir"] == 0) & ((p["tcp_flags"] & 0x05) != 0)]  # the client's FIN or RST
            closing = closing[closing["ts"] >= (s2c["ts"].iloc[-1] if len(s2c) else -1.0)]
            if len(closing) and len(s2c):
                wait = float(closing["ts"].iloc[0] - s2c["ts"].iloc[-1])
                ending = f"the client closed the connection {wait:.1f} s after the server's last data"
            else:
                ending = "the capture ended"
            yield Hit(
                {
                    "service": service(flow),
                    "status": int(flow.http_status),
                    "owed": int(flow.http_owed_s2c),
                    "ending": ending,
                    "full": int(flow.server_full),
                    "role": role,
                },
                capture=role,
                conn=int(flow.conn),
                frames=first_frames([*s2c["frame"][-1:], *closing["frame"][:1]]),
                wireshark_filter=flow_filter(flow),
                evidence={
                    "http_status": int(flow.http_status),
                    "http_response_end": int(flow.http_response_end),
                    "owed_bytes": int(flow.http_owed_s2c),
                    "largest_delivered_s2c": int(flow.largest_delivered_s2c),
                },
            )
