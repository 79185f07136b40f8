"""S: TLS handshakes that never complete."""

from __future__ import annotations

from ...evidence import first_frames, flow_filter, service
from ...results import Severity
from ..context import Context, records
from . import Hit, rule


@rule(
    code="S001",
    name="tls-handshake-stalled",
    severity=Severity.ERROR,
    message="{service}: the ClientHello was sent but the server's handshake never arrived - the server sent only "
    "{what} ({count} segments, largest {largest} bytes) in the {role} capture",
    fix="The server's certificate flight is its first large packets: check the path MTU for this connection.",
    why="A TLS server answers a ClientHello with ServerHello, Certificate and more in one flight of several "
    "full-size segments; if only ACKs or small segments arrive, the large ones are lost on the way.",
    example={
        "service": "jenkins-updates.example (198.18.0.11:443)",
        "what": "small segments",
        "count": 3,
        "largest": 1252,
        "role": "container",
    },
    references=("RFC 8446", "RFC 5246"),
)
def tls_handshake_stalled(ctx: Context):
    for role in ctx.captures:
        f = ctx.judged(role)
        cand = f[
            f["handshake_ok"]
            & (f["client_hello_len"].fillna(-1) > 0)
            & ~f["server_hello"].fillna(False).astype(bool)
            & ~f["client_second_flight"].fillna(False).astype(bool)
        ]
        for flow in records(cand):
            p = ctx.conn_packets(role, int(flow.conn), ["frame", "dir", "tcp_flags", "payload_len", "ip_len"])
            s2c = p[(p["dir"] == 1) & ((p["tcp_flags"] & 2) == 0)]
            largest = int(s2c["ip_len"].max()) if len(s2c) else 0
            what = "zero-length segments" if not (s2c["payload_len"] > 0).any() else "small segments"
            yield Hit(
                {"service": service(flow), "what": what, "count": len(s2c), "largest": largest, "role": role},
                capture=role,
                conn=int(flow.conn),
                frames=first_frames(s2c["frame"]),
                wireshark_filter=flow_filter(flow) + " && tcp.srcport==" + str(flow.server_port),
                evidence={"client_hello_len": int(flow.client_hello_len), "largest_server_packet": largest},
            )
