"""Keep-alive HTTP/HTTPS client of the pcapmtu lab (Python stdlib only), for what one curl run cannot do.

lab.py runs it inside the container namespace with a JSON plan of connections:

    python3 lab_client.py --cafile root.pem --timeout 8 '{"connections": [
        {"name": "c1", "scheme": "https", "host": "api.example", "port": 443,
         "paths": ["/", "/big?bytes=20000", "/"], "pause_s": 1.5, "hold": false}, ...]}'

Each connection is one TCP connection that serves its `paths` one after another (HTTP/1.1 keep-alive; the
server must run with --keep-alive), with `pause_s` of idle time between a response and the next request.
Connections without `hold` run first, one after another, and are closed when done. Connections with `hold`
are then opened together, send their requests, and stay open: the client prints "holding" and sleeps
until it is killed (lab.py stops the captures first, so they end with those connections idle and open).

One JSON line per connection on stdout: name, url, client_port, server_ip, statuses, bytes, time_s, error.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import ssl
import sys
import time

CLOSE_TIMEOUT_S = 3.0
HOLD_MAX_S = 120.0  # a held connection never outlives this, even if nobody kills the client


def open_connection(spec: dict, cafile: str, timeout: float) -> http.client.HTTPConnection:
    if spec["scheme"] == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        return http.client.HTTPSConnection(spec["host"], spec["port"], timeout=timeout, context=ctx)
    return http.client.HTTPConnection(spec["host"], spec["port"], timeout=timeout)


def request(conn: http.client.HTTPConnection, path: str) -> tuple[int, int]:
    conn.request("GET", path, headers={"User-Agent": "pcapmtu-lab-client/1"})
    response = conn.getresponse()
    body = response.read()
    return response.status, len(body)


def result_row(spec: dict, conn: http.client.HTTPConnection | None, started: float) -> dict:
    default = 443 if spec["scheme"] == "https" else 80
    port = "" if spec["port"] == default else f":{spec['port']}"
    return {
        "name": spec["name"],
        "url": f"{spec['scheme']}://{spec['host']}{port}{spec['paths'][0]}",
        "paths": spec["paths"],
        "client_port": None,
        "server_ip": None,
        "statuses": [],
        "bytes": 0,
        "time_s": 0.0,
        "error": None,
        "_conn": conn,
        "_started": started,
    }


def run_requests(row: dict, spec: dict, conn: http.client.HTTPConnection) -> None:
    try:
        for i, path in enumerate(spec["paths"]):
            if i:
                time.sleep(spec.get("pause_s", 0))
            status, size = request(conn, path)
            if conn.sock is not None and row["client_port"] is None:
                row["client_port"] = conn.sock.getsockname()[1]
                row["server_ip"] = conn.sock.getpeername()[0]
            row["statuses"].append(status)
            row["bytes"] += size
    except (OSError, http.client.HTTPException) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["time_s"] = round(time.monotonic() - row["_started"], 2)


def close_gracefully(conn: http.client.HTTPConnection) -> None:
    """Close as a browser does: TLS close_notify, FIN, then read until the server's FIN (no RST)."""
    sock = conn.sock
    conn.sock = None
    if sock is None:
        return
    sock.settimeout(CLOSE_TIMEOUT_S)
    if isinstance(sock, ssl.SSLSocket):
        with contextlib.suppress(OSError, ssl.SSLError):
            sock = sock.unwrap()  # sends close_notify, reads up to the server's close_notify or EOF
    try:
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    sock.close()


def emit(row: dict) -> None:
    print(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--timeout", type=float, default=8.0)
    parser.add_argument("plan", help="JSON: {connections: [...]}")
    args = parser.parse_args(argv)
    specs = json.loads(args.plan)["connections"]
    failed = False
    for spec in (s for s in specs if not s.get("hold")):
        conn = open_connection(spec, args.cafile, args.timeout)
        row = result_row(spec, conn, time.monotonic())
        run_requests(row, spec, conn)
        close_gracefully(conn)  # the client closes once its last response is in
        failed |= row["error"] is not None
        emit(row)
    held = [s for s in specs if s.get("hold")]
    if not held:
        return int(failed)
    for spec in held:
        conn = open_connection(spec, args.cafile, args.timeout)
        row = result_row(spec, conn, time.monotonic())
        run_requests(row, spec, conn)
        failed |= row["error"] is not None
        emit(row)
        # keep `conn` referenced (the row is dropped, the socket must stay open): park it on the spec
        spec["_conn"] = conn
    print("holding", flush=True)
    try:
        time.sleep(HOLD_MAX_S)
    finally:
        for spec in held:
            sock: socket.socket | None = spec["_conn"].sock
            if sock is not None:
                sock.close()
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
