"""One lab scenario: build its namespaces, start dnsmasq + the web server, capture, run the clients.

Topology (every netns and link is named pml-<rid>-*; addresses in lab_scenarios.Plan):

    container            dockerhost                              router                    server
    [eth0] ---veth--- [vh] docker0 bridge     [up] ---veth/VXLAN--- [rh]   [ri] ---veth--- [sv]
                       MASQUERADE -o up                          drops its own ICMP        dnsmasq :53
                       optional TCPMSS clamp                     frag-needed / PTB         HTTP :80, HTTPS :443

container.pcap is taken on the container's eth0, host.pcap on the dockerhost uplink (the VXLAN underlay
veth in the VXLAN scenario, `any` in the cooked-capture scenarios), server.pcap (scenarios with
server_capture) in the server namespace on its link to the router: one capture for every server address.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lab_oracle
import lab_scenarios as cat
from lab_scenarios import Flow, Plan, Scenario, bare
from lab_system import PREFIX, RES
from netns_kit import OFFLOADS_OFF, LabError

LAB_DIR = Path(__file__).resolve().parent
HELD_IDLE_S = 1.5  # idle time of connections left open before the captures stop
ICMP_ECHO_OVERHEAD = 28  # IPv4 header 20 + ICMP header 8: ping -s N sends N + 28 bytes of IP
VXLAN_VNI = 4242
VXLAN_PORT = 4789  # IANA VXLAN port (RFC 7348)
# Capture statistics printed on exit: tcpdump, then dumpcap wording.
CAPTURED = re.compile(r"^(\d+) packets captured|^Packets captured: (\d+)", re.M)
RECEIVED = re.compile(
    r"^(\d+) packets received by filter|received/dropped on interface '[^']*': (\d+)/", re.M
)
DROPPED = re.compile(
    r"^(\d+) packets dropped by kernel|received/dropped on interface '[^']*': \d+/(\d+)", re.M
)


@dataclasses.dataclass
class Settings:
    """Run-wide settings from the command line."""

    outdir: Path
    plan: Plan
    curl_timeout: float = 8.0
    verify: bool = True
    keep_failed: bool = False


@dataclasses.dataclass
class Capture:
    proc: subprocess.Popen
    log: Path


class ScenarioRun:
    """Builds, runs and tears down one scenario in its own pml-<rid>-* namespaces."""

    def __init__(self, scenario: Scenario, settings: Settings, pki: dict, workdir: Path) -> None:
        self.s, self.settings, self.plan, self.pki = scenario, settings, settings.plan, pki
        self.rid = RES.new_run_id()
        self.workdir = workdir
        self.addr = self.plan.addresses(vxlan=scenario.vxlan)
        r = f"{PREFIX}{self.rid}"
        roles = {"container": "ctr", "host": "dh", "router": "rtr", "server": "srv"}
        self.ns = {role: f"{r}-{short}" for role, short in roles.items()}
        self.dev = {
            "eth0": f"{r}-eth0",  # container side of the container veth
            "veth": f"{r}-vh",  # host side of it, enslaved to docker0
            "docker0": f"{r}-dk0",
            "uplink": f"{r}-up",  # host uplink: veth, or the VXLAN device
            "router_host": f"{r}-rh",  # router side of the uplink: veth or VXLAN
            "underlay": f"{r}-ul",  # VXLAN only: host underlay veth ...
            "router_underlay": f"{r}-ru",  # ... and its router end
            "router_inet": f"{r}-ri",
            "server": f"{r}-sv",
        }
        self.rules: dict[str, list[str]] = {"host": [], "router": [], "server": []}
        self.services: list[subprocess.Popen] = []
        self.captures: dict[str, Capture] = {}

    def anon(self, text: str) -> str:
        """Commands recorded in truth.json name links pml-XXXX-* instead of the random run id."""
        return text.replace(self.rid, "XXXX")

    def rule(self, role: str, command: str) -> None:
        """Run a firewall/route command in `role` and record it for truth.json."""
        RES.execute(command.split(), ns=self.ns[role])
        self.rules[role].append(self.anon(command))

    # -- topology --

    def build(self) -> None:
        s, a, d, ns = self.s, self.addr, self.dev, self.ns
        for name in ns.values():
            RES.add_netns(name)
            if not s.ipv6:
                # IPv4 scenarios: no IPv6 at all, so no router solicitations or MLD reports in the captures.
                RES.sysctl(name, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        RES.veth(ns["container"], d["eth0"], ns["host"], d["veth"])
        RES.bridge(ns["host"], d["docker0"], d["veth"])
        if s.vxlan:
            RES.veth(ns["host"], d["underlay"], ns["router"], d["router_underlay"])
            RES.addr(ns["host"], d["underlay"], a["host_underlay"])
            RES.addr(ns["router"], d["router_underlay"], a["router_underlay"])
            RES.link_up(ns["host"], d["underlay"])
            RES.link_up(ns["router"], d["router_underlay"])
            for role, dev, local, remote, lower in (
                ("host", d["uplink"], a["host_underlay"], a["router_underlay"], d["underlay"]),
                ("router", d["router_host"], a["router_underlay"], a["host_underlay"], d["router_underlay"]),
            ):
                vxlan = f"link add {dev} type vxlan id {VXLAN_VNI} dstport {VXLAN_PORT} "
                vxlan += f"local {bare(local)} remote {bare(remote)} dev {lower}"
                RES.ip(ns[role], *vxlan.split())
        else:
            RES.veth(ns["host"], d["uplink"], ns["router"], d["router_host"])
        RES.veth(ns["router"], d["router_inet"], ns["server"], d["server"])

        mtus = self.mtus()
        for role, dev, mtu in (
            ("container", d["eth0"], mtus["container_eth0"]),
            ("host", d["veth"], mtus["container_eth0"]),
            ("host", d["docker0"], mtus["docker0"]),
            ("host", d["uplink"], mtus["host_uplink"]),
            ("router", d["router_host"], mtus["router_toward_host"]),
            ("router", d["router_inet"], mtus["server"]),
            ("server", d["server"], mtus["server"]),
        ):
            RES.link_up(ns[role], dev, mtu)

        for role, dev, addr in (
            ("container", d["eth0"], "container"),
            ("host", d["docker0"], "docker0"),
            ("host", d["uplink"], "host_uplink"),
            ("router", d["router_host"], "router_uplink"),
            ("router", d["router_inet"], "router_internet"),
            ("server", d["server"], "api"),
            ("server", d["server"], "jenkins"),
            ("server", d["server"], "dns"),
        ):
            RES.addr(ns[role], dev, a[addr])
            if s.ipv6:
                RES.addr(ns[role], dev, a[addr + "_6"])
        for role, gw in (("container", "docker0"), ("host", "router_uplink"), ("server", "router_internet")):
            RES.default_route(ns[role], bare(a[gw]))
            if s.ipv6:
                RES.default_route(ns[role], bare(a[gw + "_6"]))
        self._route_mtus()

        forwarding = ["net.ipv4.ip_forward=1"] + (["net.ipv6.conf.all.forwarding=1"] if s.ipv6 else [])
        RES.sysctl(ns["host"], *forwarding)
        RES.sysctl(ns["router"], *forwarding)
        if s.server_mtu_probing:
            self.rule("server", "sysctl -q -w net.ipv4.tcp_mtu_probing=1")
        self._firewall()
        self._offloads()
        dns = bare(a["dns_6"] if s.ipv6 else a["dns"])
        for role in ("container", "host"):
            RES.resolv_conf(ns[role], f"nameserver {dns}\noptions timeout:2 attempts:2\n")

    def mtus(self) -> dict[str, int | None]:
        s = self.s
        return {
            "container_eth0": s.container_mtu,
            "docker0": s.container_mtu,
            "host_uplink": s.host_mtu,
            "router_toward_host": s.router_host_mtu or s.host_mtu,
            "route_mtu_to_server": s.route_mtu_to_server,
            "route_mtu_to_host": s.route_mtu_to_host,
            "server": cat.UNCLAMPED,
            "vxlan_underlay": cat.UNCLAMPED if s.vxlan else None,
        }

    def _route_mtus(self) -> None:
        """A narrow hop beyond the router, as a route MTU: forwarding honours it and sends frag-needed."""
        s, a, d = self.s, self.addr, self.dev
        uplink_net = ipaddress.ip_interface(a["router_uplink"]).network
        for mtu, net, dev, src in (
            (s.route_mtu_to_server, self.plan.internet_net, d["router_inet"], a["router_internet"]),
            (s.route_mtu_to_host, uplink_net, d["router_host"], a["router_uplink"]),
        ):
            if mtu:
                self.rule(
                    "router",
                    f"ip route replace {net} dev {dev} proto kernel scope link src {bare(src)} mtu {mtu}",
                )

    def _firewall(self) -> None:
        s, p, d = self.s, self.plan, self.dev
        ipt = "ip6tables" if s.ipv6 else "iptables"
        src_net = p.container_net6 if s.ipv6 else p.container_net
        self.rule("host", f"{ipt} -t nat -A POSTROUTING -s {src_net} -o {d['uplink']} -j MASQUERADE")
        if s.clamp:
            target = f"--set-mss {s.clamp_mss}" if s.clamp == "set-mss" else "--clamp-mss-to-pmtu"
            self.rule("host", f"{ipt} -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS {target}")
        if s.drop_icmp:
            self.rule("router", "iptables -A OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP")
            self.rule("router", "ip6tables -A OUTPUT -p icmpv6 --icmpv6-type packet-too-big -j DROP")
        if s.router_drop_https_syn:
            self.rule("router", f"{ipt} -A FORWARD -p tcp --syn --dport {p.https_port} -j DROP")
        if s.loss_probability:
            self.rule(
                "router",
                f"{ipt} -A FORWARD -p tcp -m statistic --mode random --probability {s.loss_probability} -j DROP",
            )
        if s.server_drop_icmp:
            # The server's own firewall: the router's ICMP reaches its interface (and tcpdump) but never TCP.
            if s.ipv6:
                self.rule("server", "ip6tables -A INPUT -p icmpv6 --icmpv6-type packet-too-big -j DROP")
            else:
                self.rule("server", "iptables -A INPUT -p icmp --icmp-type fragmentation-needed -j DROP")

    def _offloads(self) -> None:
        d = self.dev
        devices = [("container", "eth0"), ("host", "veth"), ("host", "docker0"), ("host", "uplink")]
        devices += [("router", "router_host"), ("router", "router_inet"), ("server", "server")]
        if self.s.vxlan:
            devices += [("host", "underlay"), ("router", "router_underlay")]
        # Default: wire-sized packets with valid checksums in the captures. offload_artifact: TSO/GSO stay on
        # (the veth default) and GRO is turned on, so the receiving side coalesces as well.
        features = ("gro", "on") if self.s.offloads else OFFLOADS_OFF
        for role, dev in devices:
            RES.offloads(self.ns[role], d[dev], features)

    def smoke_test(self) -> None:
        """Small pings from both clients to every server address before capturing.

        Fails early with a clear message if the topology is broken, and fills the ARP/ND caches: a device
        that was just created drops packets until the kernel's link watcher activates it (up to ~1 s), which
        would otherwise show up as a 1 s stall at the start of the first flow.
        """
        v6 = "_6" if self.s.ipv6 else ""
        for role in ("container", "host"):
            for target in ("dns", "api", "jenkins"):
                addr = bare(self.addr[target + v6])
                for _ in range(5):
                    ping = RES.execute(
                        ["ping", "-n", "-c", "1", "-W", "1", addr], ns=self.ns[role], check=False
                    )
                    if ping.returncode == 0:
                        break
                else:
                    raise LabError(f"topology broken: the {role} namespace cannot ping {target} ({addr})")

    # -- services and captures --

    def start_services(self) -> None:
        s, a, p = self.s, self.addr, self.plan
        dnsmasq = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts"]
        dnsmasq += ["--bind-interfaces", f"--listen-address={bare(a['dns'])}", "--port=53", "--pid-file="]
        dnsmasq += ["--log-facility=-", "--log-queries", "--user=root", "--group=root"]
        if s.ipv6:
            dnsmasq.append(f"--listen-address={bare(a['dns_6'])}")
        for role, name in cat.NAMES.items():
            v6 = f",{bare(a[role + '_6'])}" if s.ipv6 else ""
            dnsmasq.append(f"--host-record={name},{bare(a[role])}{v6}")
        self._spawn(dnsmasq, "dnsmasq", "started, version")
        server = [sys.executable, str(LAB_DIR / "lab_server.py"), "--http-port", str(p.http_port)]
        server += ["--https-port", str(p.https_port if s.https_listener else 0), "--tls", s.tls_version]
        server += ["--cert", str(self.pki["chain"]), "--key", str(self.pki["key"])]
        if s.server_keepalive:
            server.append("--keep-alive")
        self._spawn(server, "server", "ready")

    def _spawn(self, cmd: list[str], name: str, ready_marker: str) -> None:
        log = self.workdir / f"{name}.log"
        with log.open("w") as fh:
            proc = RES.spawn(self.ns["server"], cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh)
        self.services.append(proc)
        RES.wait_for(log, ready_marker, proc, name)

    def capture_commands(self, staging: Path) -> dict[str, list[str]]:
        s, d = self.s, self.dev
        host_if = {"uplink": d["underlay"] if s.vxlan else d["uplink"], "any": "any", "any_sll": "any"}
        out = {}
        points = [("container", d["eth0"]), ("host", host_if[s.host_capture])]
        if s.server_capture:
            points.append(("server", d["server"]))
        for role, iface in points:
            path = str(staging / f"{role}.pcap")
            if s.capture_format == "pcapng":
                # tcpdump 4.99 cannot write pcapng; dumpcap (what tshark captures with) writes it by default.
                cmd = ["dumpcap", "-i", iface, "-w", path]
            else:
                # --immediate-mode: without it packets sit in the kernel ring for up to a second and the
                # ones still there when tcpdump gets SIGINT are never written.
                cmd = [
                    "tcpdump",
                    "-i",
                    iface,
                    "-s",
                    "0",
                    "-U",
                    "--immediate-mode",
                    "-n",
                    "-Z",
                    "root",
                    "-w",
                    path,
                ]
                if iface == "any":
                    # Ring slots for `any` are snaplen-sized (no MTU to size them by), so the default 2 MB
                    # ring holds only ~8 packets and a burst overflows it; 64 MB holds ~250.
                    cmd[1:1] = ["-B", "65536"]
                if s.host_capture == "any_sll" and iface == "any":
                    cmd += ["-y", "LINUX_SLL"]
                if s.capture_format == "pcap-nsec":
                    cmd.append("--time-stamp-precision=nano")
            out[role] = cmd
        return out

    def start_captures(self, staging: Path) -> None:
        for role, cmd in self.capture_commands(staging).items():
            log = self.workdir / f"capture-{role}.log"
            with log.open("w") as fh:
                proc = RES.spawn(self.ns[role], cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh)
            self.captures[role] = Capture(proc, log)
            RES.wait_for(
                log, "Capturing on" if cmd[0] == "dumpcap" else "listening on", proc, f"{cmd[0]} ({role})"
            )
        time.sleep(0.2)

    def stop_captures(self) -> None:
        """SIGINT each capture (by PID) so it flushes; fail unless it wrote every packet the kernel saw."""
        for role, cap in list(self.captures.items()):
            rc = RES.stop(cap.proc, signal.SIGINT, 10)
            del self.captures[role]
            text = cap.log.read_text(errors="replace")
            stats = [_stat(pattern, text) for pattern in (CAPTURED, RECEIVED, DROPPED)]
            if rc not in (0, -signal.SIGINT) or None in stats:
                raise LabError(f"capture on {role} exited {rc} without its statistics:\n{text.strip()}")
            captured, received, dropped = stats
            # With `-i any` the kernel also counts the outgoing copy of loopback packets that libpcap
            # discards, so "received" may exceed "captured" there without any loss.
            any_device = "-i any" in " ".join(map(str, cap.proc.args))
            if dropped or captured > received or (captured < received and not any_device):
                raise LabError(
                    f"capture on {role} is incomplete ({captured} written, {received} received, "
                    f"{dropped} dropped by the kernel):\n{text.strip()}"
                )

    def teardown(self) -> None:
        for cap in self.captures.values():
            RES.stop(cap.proc, signal.SIGINT)
        self.captures.clear()
        for proc in self.services:
            RES.stop(proc)
        for name in self.ns.values():
            RES.del_netns(name)  # and its /etc/netns dir

    # -- clients --

    def curl(self, flow: Flow, upload_file: Path) -> dict:
        p, s = self.plan, self.s
        port = p.https_port if flow.scheme == "https" else p.http_port
        default = 443 if flow.scheme == "https" else 80
        url = f"{flow.scheme}://{flow.host}{'' if port == default else f':{port}'}{flow.path}"
        max_time = flow.max_time or self.settings.curl_timeout
        cmd = ["curl", "-sS", "-o", "/dev/null", "--noproxy", "*", "-6" if s.ipv6 else "-4"]
        cmd += ["--max-time", f"{max_time:g}", "--cacert", str(self.pki["root"])]
        cmd += ["-w", "%{http_code} %{size_download} %{size_upload} %{time_total} %{remote_ip} %{local_port}"]
        if flow.upload_bytes:
            upload_file.write_bytes(b"u" * flow.upload_bytes)
            # "Expect:" off: the body follows the headers at once, as most clients do.
            cmd += [
                "-H",
                "Expect:",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                f"@{upload_file}",
            ]
        started = time.monotonic()
        proc = RES.execute([*cmd, url], ns=self.ns[flow.client], check=False, timeout=max_time + 15)
        elapsed = time.monotonic() - started
        code, down, up, total, remote, local_port = (proc.stdout.split() + [""] * 6)[:6]
        server_role = ("jenkins" if flow.host == cat.NAMES["jenkins"] else "api") + ("_6" if s.ipv6 else "")
        result = {
            "name": flow.name,
            "client": flow.client,
            "url": url,
            "method": "POST" if flow.upload_bytes else "GET",
            "upload_bytes": flow.upload_bytes,
            "server_ip": remote or bare(self.addr[server_role]),
            "server_port": port,
            "client_port": int(local_port) if local_port.isdigit() and local_port != "0" else None,
            "expected": flow.expected,
            "curl_exit_code": proc.returncode,
            "http_code": int(code) if code.isdigit() else None,
            "bytes_downloaded": int(down) if down.isdigit() else None,
            "bytes_uploaded": int(up) if up.isdigit() else None,
            "curl_time_s": round(float(total) if total else elapsed, 2),
            "curl_error": proc.stderr.strip() or None,
        }
        result["ok"] = lab_oracle.flow_ok(result)
        return result

    def _client_plan(self, flows: list[Flow]) -> list[str]:
        """lab_client.py command line for keep-alive connections (see its docstring)."""
        p = self.plan
        connections = []
        for flow in flows:
            connections.append(
                {
                    "name": flow.name,
                    "scheme": flow.scheme,
                    "host": flow.host,
                    "port": p.https_port if flow.scheme == "https" else p.http_port,
                    "paths": [flow.path, *flow.more_paths],
                    "pause_s": flow.pause_s,
                    "hold": flow.hold_open,
                }
            )
        cmd = [sys.executable, str(LAB_DIR / "lab_client.py"), "--cafile", str(self.pki["root"])]
        return [
            *cmd,
            "--timeout",
            f"{self.settings.curl_timeout:g}",
            json.dumps({"connections": connections}),
        ]

    def _client_results(self, flows: list[Flow], lines: list[str], exit_code: int | None) -> list[dict]:
        """One row per keep-alive connection, with the keys of a curl row (curl_exit_code 0: all 2xx)."""
        rows = {}
        for line in lines:
            if line.startswith("{"):
                row = json.loads(line)
                rows[row["name"]] = row
        out = []
        for flow in flows:
            row = rows.get(flow.name)
            statuses = row["statuses"] if row else []
            all_ok = row is not None and not row["error"] and len(statuses) == 1 + len(flow.more_paths)
            all_ok = all_ok and all(200 <= c < 300 for c in statuses)
            result = {
                "name": flow.name,
                "client": flow.client,
                "url": row["url"] if row else None,
                "method": "GET",
                "upload_bytes": 0,
                "server_ip": row["server_ip"] if row else None,
                "server_port": self.plan.https_port if flow.scheme == "https" else self.plan.http_port,
                "client_port": row["client_port"] if row else None,
                "expected": flow.expected,
                "curl_exit_code": 0 if all_ok else (exit_code or 1),
                "http_code": statuses[-1] if statuses else None,
                "bytes_downloaded": row["bytes"] if row else None,
                "bytes_uploaded": 0,
                "curl_time_s": float(row["time_s"]) if row else 0.0,
                "curl_error": (row["error"] if row else "no result from lab_client.py"),
                "tool": "lab_client.py (http.client keep-alive)",
                "requests": [flow.path, *flow.more_paths],
                "statuses": statuses,
                "pause_s": flow.pause_s,
                "left_open": flow.hold_open,
            }
            result["ok"] = lab_oracle.flow_ok(result)
            out.append(result)
        return out

    def keepalive(self, flows: list[Flow]) -> list[dict]:
        """Keep-alive connections that finish (closed by the client), run to completion one after another."""
        timeout = sum(f.pause_s * len(f.more_paths) for f in flows) + 30 * len(flows)
        proc = RES.execute(self._client_plan(flows), ns=self.ns["container"], check=False, timeout=timeout)
        if proc.stderr.strip():
            (self.workdir / "client.log").write_text(proc.stderr)
        return self._client_results(flows, proc.stdout.splitlines(), proc.returncode)

    def hold_open(self, flows: list[Flow]) -> tuple[subprocess.Popen, list[dict]]:
        """Open connections that get their answers and then stay idle; the caller kills the client (by PID)."""
        log = self.workdir / "client-hold.log"
        with log.open("w") as fh:
            proc = RES.spawn(
                self.ns["container"],
                self._client_plan(flows),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        self.services.append(proc)  # teardown stops it if anything goes wrong before the caller does
        RES.wait_for(log, "holding", proc, "lab_client.py (held connections)")
        return proc, self._client_results(flows, log.read_text().splitlines(), None)

    def ping(self, payload: int) -> dict:
        """An engineer's DF ping from the container (by name, so DNS shows up too)."""
        cmd = ["ping", "-n", "-M", "do", "-s", str(payload), "-c", "2", "-W", "1", cat.NAMES["api"]]
        proc = RES.execute(cmd, ns=self.ns["container"], check=False, timeout=15)
        lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        return {
            "command": " ".join(cmd),
            "payload": payload,
            "ip_total": payload + ICMP_ECHO_OVERHEAD,
            "exit_code": proc.returncode,
            "output": [ln for ln in lines if "mtu" in ln.lower() or "packets transmitted" in ln],
        }

    # -- the whole thing --

    def run(self, staging: Path) -> dict:
        s = self.s
        started = time.monotonic()
        try:
            self.build()
            self.smoke_test()
            self.start_services()
            self.start_captures(staging)
            flows = []
            for flow in s.flows:
                RES.check()
                if flow.hold_open:
                    continue
                if flow.keepalive:
                    flows += self.keepalive([flow])
                else:
                    flows.append(self.curl(flow, self.workdir / "upload.bin"))
                time.sleep(0.3)
            holder = None
            held = [f for f in s.flows if f.hold_open]
            if held:
                holder, rows = self.hold_open(held)
                flows += rows
                time.sleep(HELD_IDLE_S)  # the held connections sit idle in the captures
            pings = []
            if s.pings:
                # After the curls: a DF ping teaches the container the path MTU, which would lower its MSS.
                pings = [
                    self.ping(s.host_mtu - ICMP_ECHO_OVERHEAD),
                    self.ping(s.container_mtu - ICMP_ECHO_OVERHEAD),
                ]
            time.sleep(0.5)
            self.stop_captures()
            if holder is not None:
                RES.stop(holder)  # after the captures: its connections end open and idle in them
        finally:
            self.teardown()
        return {"flows": flows, "pings": pings, "duration_s": round(time.monotonic() - started, 1)}


def _stat(pattern: re.Pattern, text: str) -> int | None:
    match = pattern.search(text)
    return None if match is None else int(next(g for g in match.groups() if g is not None))
