"""HTTP + HTTPS test server for the pcapmtu lab (Python stdlib only).

lab.py starts one of these inside the "server" network namespace:

    python3 lab_server.py --http-port 80 --https-port 443 --cert chain.pem --key leaf.key --tls 1.3

Endpoints (same on both ports):
    GET  /              small page (a few hundred bytes; fits in one segment)
    GET  /big?bytes=N   N bytes of text (default 200000)
    GET  /slow?s=N      waits N seconds, then answers a small page
    POST /upload        reads and discards the body, answers {"received": N}

Every answer says "Connection: close" and the server closes, unless it runs with --keep-alive: then a
connection stays open for further requests (HTTP/1.1 persistent connections) until the client closes it or
it has been idle for CONNECTION_TIMEOUT_S.

The TLS handshake runs in the per-connection thread, not in the accept loop: a handshake stuck in an
MTU black hole must not stop the server from accepting the next client.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from netns_kit import DualStackHTTPServer

SMALL_PAGE = (
    b"<!doctype html><html><head><title>pcapmtu lab</title></head>"
    b"<body><p>ok: small response, fits in one segment</p></body></html>\n"
)
MAX_BIG = 50_000_000
MAX_SLOW_S = 60.0
# A socket that makes no progress for this long is given up (handshake or request read).
CONNECTION_TIMEOUT_S = 30.0


def big_body(size: int) -> bytes:
    """Deterministic printable filler, so the same request always yields the same bytes."""
    line = b"pcapmtu lab filler line: the quick brown fox jumps over the lazy dog 0123456789\n"
    reps = size // len(line) + 1
    return (line * reps)[:size]


class LabHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pcapmtu-lab/1"
    sys_version = ""
    keep_alive = False  # set by --keep-alive

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _reply(self, status: int, body: bytes, ctype: str = "text/html") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if not self.keep_alive:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if not self.keep_alive:
            self.close_connection = True

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/":
            self._reply(200, SMALL_PAGE)
        elif url.path == "/big":
            size = min(int(query.get("bytes", ["200000"])[0]), MAX_BIG)
            self._reply(200, big_body(size), "text/plain")
        elif url.path == "/slow":
            time.sleep(min(float(query.get("s", ["5"])[0]), MAX_SLOW_S))
            self._reply(200, SMALL_PAGE)
        else:
            self._reply(404, b"not found\n", "text/plain")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/upload":
            self._reply(404, b"not found\n", "text/plain")
            return
        remaining = int(self.headers.get("Content-Length", "0"))
        received = 0
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        self._reply(200, json.dumps({"received": received}).encode() + b"\n", "application/json")


class LabServer(DualStackHTTPServer):
    """Dual-stack (IPv4 + IPv6) threading server; optional TLS done in the worker thread."""

    tls_context: ssl.SSLContext | None = None

    def finish_request(self, request, client_address) -> None:  # type: ignore[override]
        request.settimeout(CONNECTION_TIMEOUT_S)
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        try:
            tls_sock = self.tls_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            sys.stderr.write(f"{client_address[0]} TLS handshake failed: {exc}\n")
            return
        try:
            super().finish_request(tls_sock, client_address)
        finally:
            tls_sock.close()


def tls_context(cert: str, key: str, version: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pinned = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
    ctx.minimum_version = pinned
    ctx.maximum_version = pinned
    ctx.load_cert_chain(cert, key)
    return ctx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--http-port", type=int, default=80)
    parser.add_argument("--https-port", type=int, default=443, help="0 = no HTTPS listener")
    parser.add_argument("--cert", help="PEM chain: leaf first, then intermediates")
    parser.add_argument("--key", help="PEM private key of the leaf")
    parser.add_argument("--tls", choices=["1.2", "1.3"], default="1.3")
    parser.add_argument("--keep-alive", action="store_true", help="persistent connections (HTTP/1.1)")
    args = parser.parse_args(argv)
    LabHandler.keep_alive = args.keep_alive

    servers = [LabServer(("::", args.http_port), LabHandler)]
    if args.https_port:
        if not (args.cert and args.key):
            parser.error("--https-port needs --cert and --key")
        tls_server = LabServer(("::", args.https_port), LabHandler)
        tls_server.tls_context = tls_context(args.cert, args.key, args.tls)
        servers.append(tls_server)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    # lab.py waits for this line before it starts capturing.
    print("ready", flush=True)
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
