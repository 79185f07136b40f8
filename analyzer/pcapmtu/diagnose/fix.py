"""The remediation, computed: MSS clamp and container MTU values derived from the path MTU."""

from __future__ import annotations

from dataclasses import replace

from ..results import Fix, Verdict
from . import platforms
from .platforms import EITHER, Network

NFT_TABLE = "pcapmtu"  # a table of its own: nftables creates none by default, and ours is easy to remove


def compute(
    verdict: Verdict,
    path_mtu: int | None,
    ipv: int,
    clamp_seen: int | None,
    direction: str,
    low: int | None = None,
    high: int | None = None,
    network: Network | None = None,
    clamp_rules: tuple[str, ...] = (),
) -> Fix | None:
    """Commands with numbers for an MTU verdict; a note when a clamp is already in effect, or when the host
    has clamp rules (`clamp_rules`, recorded by `pcapmtu capture`) that did not prevent the failure.
    `network`: the platform and overlay the fix speaks for (platforms.decide); Docker when not given."""
    if not Verdict(verdict).is_mtu:
        if clamp_seen:
            return Fix(
                f"An MSS clamp to {clamp_seen} is already in effect on the docker host; nothing to change.",
                clamp_seen,
                None,
                (),
                ("The clamp is the fix working: keep it in the host's firewall rules.",),
            )
        return None
    if not path_mtu and low:
        # the path carried `low`-byte packets (acknowledged): clamping to them is safe, if not the largest
        fix = compute(verdict, low, ipv, clamp_seen, direction, network=network, clamp_rules=clamp_rules)
        bound = f"less than {high}" if high else "not known"
        note = (
            f"The captures pin no single path MTU: packets of {low} bytes were acknowledged, so MSS "
            f"{low - (40 if ipv == 4 else 60)} is safe; the largest that fits is {bound}. Measure it with "
            "ping -M do -s SIZE from the host to clamp exactly."
        )
        return replace(fix, notes=(note, *fix.notes[1:]))
    if not path_mtu:
        below = f" (it is below {high}: {high}-byte packets do not pass)" if high else ""
        return Fix(
            f"Lower the MSS on the docker host; the captures do not pin the path MTU{below}, so measure it first "
            f"(ping -M do -s SIZE from the host) and clamp to MTU - {40 if ipv == 4 else 60}.",
            None,
            None,
            (
                {
                    "what": "clamp to the route MTU (needs the host's uplink MTU to be the path MTU)",
                    "command": f"{'iptables' if ipv == 4 else 'ip6tables'} -t mangle -A FORWARD -p tcp "
                    "--tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
                    "choice": "recommended",
                    "when": "until the path MTU is measured",
                },
            ),
            tuple(_recorded_clamps(clamp_rules, clamp_seen)),
        )
    mss4, mss6 = path_mtu - 40, path_mtu - 60
    mtu = path_mtu
    iptables = f"iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss {mss4}"
    ip6tables = f"ip6tables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss {mss6}"
    own, other = (
        ((iptables, "IPv4"), (ip6tables, "IPv6")) if ipv == 4 else ((ip6tables, "IPv6"), (iptables, "IPv4"))
    )
    tool = "iptables" if ipv == 4 else "ip6tables"
    commands = [
        {
            "what": f"clamp the MSS of forwarded connections ({own[1]}, the failing traffic)",
            "command": own[0],
            "choice": "recommended",
            "when": "",
        },
        {
            "what": f"the same for {other[1]}",
            "command": other[0],
            "choice": "recommended",
            "when": f"if {other[1]} takes this path too",
        },
        {
            "what": "nftables: first a table and a forward chain at the mangle priority (once)",
            "command": f"nft add table inet {NFT_TABLE} && nft add chain inet {NFT_TABLE} forward "
            "'{ type filter hook forward priority mangle; }'",
            "choice": "alternative",
            "when": "when the host's firewall is nftables rather than iptables",
        },
        {
            "what": "then the nftables clamp, each family with its own MSS",
            "command": f"nft add rule inet {NFT_TABLE} forward meta nfproto ipv4 tcp flags syn / syn,rst "
            f"tcp option maxseg size set {mss4} && nft add rule inet {NFT_TABLE} forward meta nfproto ipv6 "
            f"tcp flags syn / syn,rst tcp option maxseg size set {mss6}",
            "choice": "alternative",
            "when": "",
        },
        {
            "what": "clamp to the MTU of the outgoing route",
            "command": f"{tool} -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
            "choice": "alternative",
            "when": "only when the host's own uplink is the narrow hop (not a hop beyond it)",
        },
        {
            "what": "give new docker networks an MTU that fits (dockerd flag)",
            "command": f"dockerd --default-network-opt=bridge=com.docker.network.driver.mtu={mtu}",
            "choice": "alternative",
            "when": "to fix the containers' MTU instead of rewriting SYNs (networks created afterwards)",
        },
        {
            "what": "a user-defined network with that MTU",
            "command": f"docker network create -o com.docker.network.driver.mtu={mtu} NAME",
            "choice": "alternative",
            "when": "for one application's own network",
        },
    ]
    notes = [
        f"Path MTU {path_mtu}: MSS {mss4} for IPv4, {mss6} for IPv6.",
        "The clamp rewrites SYN and SYN-ACK of forwarded connections, so it fixes downloads and uploads alike.",
        f'The default bridge takes its MTU from /etc/docker/daemon.json: set "mtu": {mtu} there and restart '
        "docker (a file to edit, not a command).",
    ]
    if direction == "download":
        notes.append(
            "The remote server is the sender: its PMTUD fails because the ICMP never reaches it, so the fix "
            "belongs on this side (clamp or MTU). net.ipv4.tcp_mtu_probing on the client does not help "
            "downloads - only the sender probes."
        )
    else:
        notes.append(
            "The container is the sender: net.ipv4.tcp_mtu_probing=1 inside it lets it recover, slowly."
        )
    if clamp_seen:
        notes.append(f"A clamp to {clamp_seen} is already in effect but is too large for this path.")
    notes += _recorded_clamps(clamp_rules, clamp_seen)
    mss = mss4 if ipv == 4 else mss6
    family = "" if ipv == 4 else " for IPv6"
    summary = f"Clamp the TCP MSS{family} to {mss} on the docker host (or set the container MTU to {mtu})."
    fix = Fix(summary, mss, mtu, tuple(commands), tuple(notes))
    return _speak(fix, network or Network("docker", "no --platform", None, None), path_mtu, ipv, mss4, mss6)


def _recorded_clamps(rules: tuple[str, ...], clamp_seen: int | None) -> list[str]:
    """What the host's own clamp rules mean for an MTU failure they did not prevent."""
    if not rules:
        return []
    listed = "; ".join(rules[:3]) + (f" (and {len(rules) - 3} more)" if len(rules) > 3 else "")
    note = f"The docker host has MSS clamp rules already (recorded while capturing): {listed}."
    if not clamp_seen:
        note += (
            " No connection shows its MSS rewritten, so they do not match the failing traffic: check their "
            "chain (FORWARD for containers), interfaces and addresses before adding another."
        )
    if any("--clamp-mss-to-pmtu" in r or "rt mtu" in r for r in rules):
        note += (
            " A clamp to the route MTU follows the host's own uplink only: it cannot see a narrower hop "
            "beyond it, which is why a fixed MSS is recommended."
        )
    return [note]


DOCKER_ONLY = ("dockerd ", "docker network create ")


def _speak(fix: Fix, network: Network, path_mtu: int, ipv: int, mss4: int, mss6: int) -> Fix:
    """The same fix in the language of the platform: Docker's settings, the CNI's, or both when the captures
    cannot tell; the arithmetic of every number in `settings`."""
    settings: list[dict] = []
    snippets: list[dict] = []
    commands = list(fix.commands)
    notes = list(fix.notes)
    k8s = network.platform in ("kubernetes", EITHER)
    if network.platform in ("docker", EITHER):
        found, files = platforms.docker(network, path_mtu)
        settings += found
        snippets += files
    if k8s:
        found, extra = platforms.kubernetes(network, path_mtu, ipv)
        clamp, files = platforms.clamp_daemonset(mss4, mss6)
        settings += found
        snippets += files
        if network.platform == "kubernetes":
            commands = [c for c in commands if not c["command"].startswith(DOCKER_ONLY)]
            notes = [n for n in notes if "daemon.json" not in n]
        commands += clamp + extra
        if not (network.overlay or (network.cni and network.cni.encapsulation)):
            notes.append(
                "The captures do not show the CNI's tunnel (a pod's traffic to outside the cluster leaves the "
                "node unencapsulated), so the settings list each CNI and encapsulation: use the line of yours; "
                "a capture of node-to-node traffic on the underlay, or on the CNI's interface, names it."
            )
        notes.append(
            "On Kubernetes the clamp goes on every node (pods' traffic is forwarded there); the CNI's MTU "
            "changes every pod's MTU and takes effect for pods created after the change: when only traffic "
            "to this server crosses the narrow hop, the clamp is the smaller change."
        )
    o = network.overlay
    if o:
        inside = (
            f"the failing traffic was seen inside it, so path MTU {path_mtu} is already net of it"
            if o.carries_failing
            else f"the failing traffic was not seen inside it: {o.overhead} bytes come off path MTU {path_mtu} for "
            "the traffic that is"
        )
        how = "measured from outer and inner lengths" if o.measured else "the protocol's fixed size"
        notes.append(f"{o.words} in the {o.capture} capture adds {o.overhead} bytes ({how}); {inside}.")
        if o.kind == "wireguard":
            notes.append(
                "WireGuard is encrypted: the captures cannot show whether the failing traffic went through it. "
                f"If it did, path MTU {path_mtu} is already net of its {o.overhead} bytes and the values above "
                "are that much lower than needed: safe, not the largest that fits."
            )
        if k8s and not any(s["platform"] == "kubernetes" for s in settings):
            notes.append(
                f"No common CNI uses {o.words}: the tunnel is the node's own (a VPN or a GRE link); give the "
                f"pods an MTU that fits the path ({path_mtu}) in the CNI's own setting."
            )
    summary = fix.summary
    if network.platform == "kubernetes":
        family = "" if ipv == 4 else " for IPv6"
        cni = [s for s in settings if s["platform"] == "kubernetes"]
        if len({(s["system"], s["encapsulation"]) for s in cni}) == 1:  # the captures name the CNI's setup
            instead = f"set the CNI's MTU: {cni[0]['line']}"
        elif cni:  # which CNI is not known: no one of them is the answer
            instead = "set your CNI's MTU: its line in the settings"
        else:
            instead = f"give the pods an MTU of at most {path_mtu}"
        summary = f"Clamp the TCP MSS{family} to {fix.mss} on the nodes (or {instead})."
    elif network.platform == EITHER:
        summary = f"{summary[:-1]}; on a Kubernetes node the same clamp, or the CNI's MTU from the settings."
    described = {
        "platform": network.platform,
        "decided_by": network.decided_by,
        "overlay": o.to_dict() if o else None,
        "cni": network.cni.name if network.cni else "",
    }
    return replace(
        fix,
        summary=summary,
        commands=tuple(commands),
        notes=tuple(notes),
        platform=network.platform,
        network=described,
        settings=tuple(settings),
        snippets=tuple(snippets),
    )
