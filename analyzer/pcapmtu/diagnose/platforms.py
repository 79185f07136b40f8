"""The fix in the platform's language: Docker's daemon.json and network options, each CNI's MTU setting, and an
MSS clamp a DaemonSet can apply again and again.

Which MTU the encapsulation is subtracted from (docs/fixes.md, "Which MTU"): a CNI's pod MTU is the
underlay's MTU minus the tunnel's overhead. When the failing connection's packets were seen *inside* the
tunnel, the measured path MTU is already the inner one (the pod MTU to set) and the underlay carries that
plus the overhead; otherwise the path MTU was measured on plain packets, it is the most the underlay carries
there, and the pod MTU is that minus the overhead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .overlay import NOMINAL, WORDS, Cni, Overlay

PLATFORMS = ("auto", "docker", "kubernetes")
EITHER = "docker or kubernetes"
OVN_K_OVERHEAD = 100  # Red Hat's OVN-Kubernetes docs: the cluster MTU is 100 below the lowest node MTU
CLAMP_IMAGE = "nicolaka/netshoot"  # has iptables; any image with iptables matching the node's backend does

SOURCES = {  # the pages each setting and its overhead were checked against (docs/fixes.md)
    "calico": "https://docs.tigera.io/calico/latest/networking/configuring/mtu",
    "calico-felix": "https://docs.tigera.io/calico/latest/reference/resources/felixconfig",
    "cilium": "https://pkg.go.dev/github.com/cilium/cilium@v1.15.2/pkg/mtu",
    "flannel": "https://github.com/flannel-io/flannel/blob/v0.28.9/Documentation/backends.md",
    "weave": "https://www.weave.works/docs/net/latest/using-weave/fastdp/",
    "ovn-kubernetes": "https://docs.redhat.com/ko/documentation/openshift_container_platform/4.18/html/"
    "installing_on_vmware_vsphere/nw-operator-configuration-parameters-for-ovn-sdn_installing-vsphere-"
    "installer-provisioned-network-customizations",
    "docker": "https://docs.docker.com/network/drivers/bridge/#options",
}


@dataclass(frozen=True)
class Network:
    """The network the fix is written for."""

    platform: str  # docker, kubernetes, or EITHER when the captures cannot tell
    decided_by: str  # why, in words
    overlay: Overlay | None  # the encapsulation seen (most packets), None when none
    cni: Cni | None  # the CNI an interface name gives away


def decide(platform: str, overlays: list[Overlay], cnis: list[Cni], recorded: str | None = None) -> Network:
    """`platform` as given (docker, kubernetes) or auto: what `pcapmtu capture` recorded (`recorded`: it took
    a Docker container's captures), else Kubernetes only on strong evidence (an interface only a CNI creates);
    an overlay alone is not (Docker Swarm and plain VXLAN hosts use it too): then both."""
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {', '.join(PLATFORMS)}, not {platform!r}")
    overlay = overlays[0] if overlays else None
    cni = cnis[0] if cnis else None
    if platform != "auto":
        return Network(platform, f"--platform {platform}", overlay, cni)
    if recorded:
        return Network(recorded, f"pcapmtu capture took a {recorded} container's captures", overlay, cni)
    if cni:
        return Network(
            "kubernetes",
            f"the {cni.capture} capture was taken on {cni.device}, a {cni.name} device",
            overlay,
            cni,
        )
    if overlay:
        why = f"{overlay.words} in the {overlay.capture} capture: Docker overlay or a Kubernetes CNI, the capture cannot tell"
        return Network(EITHER, why, overlay, None)
    return Network("docker", "no overlay in the captures and no --platform", None, None)


def _basis(network: Network, path_mtu: int) -> tuple[int, str]:
    """(the underlay MTU, how it was found) from the path MTU and where it was measured."""
    o = network.overlay
    if o and o.carries_failing:
        return (
            path_mtu + o.overhead,
            f"underlay {path_mtu + o.overhead} (path MTU {path_mtu} inside {o.words} + {o.overhead})",
        )
    return path_mtu, f"path MTU {path_mtu}"


def _overhead(network: Network, kind: str, ipv: int) -> tuple[int, str]:
    """The overhead of `kind`: the measured one when the captures show that very tunnel, else the protocol's."""
    o = network.overlay
    if o and o.kind == kind:
        return o.overhead, f"{o.overhead} {WORDS[kind]} ({'measured' if o.measured else 'fixed'})"
    outer = o.outer_ipv if o else ipv
    value = NOMINAL[(kind, outer)]
    return value, f"{value} {WORDS[kind]}{' over IPv6' if outer == 6 else ''}"


def _setting(system, encapsulation, setting, value, line, where, source) -> dict:
    return {
        "platform": "docker" if system == "docker" else "kubernetes",
        "system": system,
        "encapsulation": encapsulation,
        "setting": setting,
        "value": value,
        "line": line,
        "where": where,
        "source": SOURCES[source],
    }


def _patch(payload: dict) -> str:
    """A kubectl/calicoctl merge patch, single-quoted for the shell (numbers and fixed keys only)."""
    return "'" + json.dumps(payload, separators=(",", ":")) + "'"


def kubernetes(network: Network, path_mtu: int, ipv: int) -> tuple[list[dict], list[dict]]:
    """(settings, commands) for the CNIs that fit the evidence: the named one, else every CNI that uses the
    encapsulation seen, else every common CNI with each of its encapsulations."""
    underlay, how = _basis(network, path_mtu)
    settings: list[dict] = []
    commands: list[dict] = []
    seen = network.overlay.kind if network.overlay else ""
    named = network.cni.name if network.cni else ""
    wanted_encap = (network.cni.encapsulation if network.cni else "") or seen

    def fits(cni: str, encap: str) -> bool:
        return (not named or cni == named) and (not wanted_encap or encap in (wanted_encap, ""))

    # Calico: the pod (veth) MTU and each tunnel device's MTU are underlay - overhead
    felix = {"vxlan": "vxlanMTU", "ipip": "ipipMTU", "wireguard": "wireguardMTU"}
    for encap in ("vxlan", "ipip", "wireguard", ""):
        if not fits("calico", encap) or (encap == "" and wanted_encap) or (encap == "ipip" and ipv == 6):
            continue  # Calico's IP-in-IP carries IPv4 only
        over, said = _overhead(network, encap, ipv) if encap else (0, "0 (no encapsulation)")
        value = underlay - over
        label = WORDS.get(encap, "unencapsulated (BGP)")
        settings.append(
            _setting(
                "calico",
                encap,
                "veth_mtu",
                value,
                f"Calico {label}: veth_mtu {value} = {how} - {said}",
                "ConfigMap calico-config (kube-system), key veth_mtu; operator installs: Installation "
                "default, spec.calicoNetwork.mtu",
                "calico",
            )  # fmt: skip
        )
        if encap:
            field = felix[encap] + ("V6" if ipv == 6 and encap != "ipip" else "")
            settings.append(
                _setting(
                    "calico",
                    encap,
                    field,
                    value,
                    f"Calico {label}: FelixConfiguration {field} {value} = {how} - {said}",
                    "FelixConfiguration default, spec." + field,
                    "calico-felix",
                )  # fmt: skip
            )
        if wanted_encap and encap == wanted_encap:  # a number for a command only when the tunnel is known
            commands += _calico_commands(value, encap, ipv, felix)
    # Cilium: its `mtu` is the underlay's; Cilium takes its tunnel (50) and WireGuard overheads off itself
    for encap in ("vxlan", "geneve", "wireguard", ""):
        if not fits("cilium", encap) or (encap == "" and wanted_encap):
            continue
        over, said = _overhead(network, encap, ipv) if encap else (0, "")
        label = WORDS.get(encap, "native routing")
        takes = (
            f"Cilium subtracts {said} itself: pods get {underlay - over}" if encap else f"pods get {underlay}"
        )
        settings.append(
            _setting(
                "cilium",
                encap,
                "mtu",
                underlay,
                f"Cilium {label}: mtu {underlay} = {how} (the underlay's; {takes})",
                "ConfigMap cilium-config (kube-system), key mtu; Helm value MTU",
                "cilium",
            )  # fmt: skip
        )
    if any(s["system"] == "cilium" for s in settings):
        commands.append(
            {
                "what": f"Cilium: the underlay MTU {underlay}, then restart the agents (existing pods keep their "
                "MTU until they are recreated)",
                "command": f"kubectl -n kube-system patch configmap cilium-config --type merge -p "
                f"{_patch({'data': {'mtu': str(underlay)}})} && kubectl -n kube-system rollout restart "
                "daemonset/cilium",
                "choice": "alternative",
                "when": "on a Cilium cluster",
            }
        )
    # Flannel: derives FLANNEL_MTU from the MTU of the interface it uses (--iface) minus the backend's overhead
    for encap in ("vxlan", "wireguard"):
        if not fits("flannel", encap):
            continue
        over, said = _overhead(network, encap, ipv)
        value = underlay - over
        settings.append(
            _setting(
                "flannel",
                encap,
                "FLANNEL_MTU",
                value,
                f"Flannel {WORDS[encap]}: FLANNEL_MTU {value} = {how} - {said}",
                f"/run/flannel/subnet.env on each node; flannel derives it from the MTU of "
                f"its --iface interface: set that interface's MTU to {underlay}, then restart kube-flannel",
                "flannel",
            )  # fmt: skip
        )
    # Weave Net fast datapath is VXLAN (UDP 6784)
    if fits("weave", "vxlan"):
        over, said = _overhead(network, "vxlan", ipv)
        value = underlay - over
        settings.append(
            _setting(
                "weave",
                "vxlan",
                "WEAVE_MTU",
                value,
                f"Weave Net fast datapath (VXLAN): WEAVE_MTU {value} = {how} - {said}",
                "env WEAVE_MTU of container weave, DaemonSet weave-net (kube-system)",
                "weave",
            )  # fmt: skip
        )
        commands.append(
            {
                "what": f"Weave Net: WEAVE_MTU {value} (the DaemonSet rolls its pods)",
                "command": f"kubectl -n kube-system set env daemonset/weave-net -c weave WEAVE_MTU={value}",
                "choice": "alternative",
                "when": "on a Weave Net cluster",
            }
        )
    # OVN-Kubernetes: Geneve; its documentation keeps 100 bytes for it
    if fits("ovn-kubernetes", "geneve"):
        value = underlay - OVN_K_OVERHEAD
        settings.append(
            _setting(
                "ovn-kubernetes",
                "geneve",
                "mtu",
                value,
                f"OVN-Kubernetes Geneve: mtu {value} = {how} - "
                f"{OVN_K_OVERHEAD} (Geneve with OVN's options, as OVN-Kubernetes documents)",
                "ovnkube --mtu / [default] mtu; OpenShift: the cluster network MTU migration",
                "ovn-kubernetes",
            )  # fmt: skip
        )
    return settings, commands


def _calico_commands(value: int, encap: str, ipv: int, felix: dict) -> list[dict]:
    restart = "kubectl -n kube-system rollout restart daemonset/calico-node"
    found = [
        {
            "what": f"Calico (manifest install): pod MTU {value}, then restart calico-node",
            "command": f"kubectl -n kube-system patch configmap calico-config --type merge -p "
            f"{_patch({'data': {'veth_mtu': str(value)}})} && {restart}",
            "choice": "alternative",
            "when": "on a Calico cluster installed from manifests",
        },
        {
            "what": f"Calico (operator install): pod MTU {value}",
            "command": f"kubectl patch installation.operator.tigera.io default --type merge -p "
            f"{_patch({'spec': {'calicoNetwork': {'mtu': value}}})}",
            "choice": "alternative",
            "when": "on a Calico cluster installed by the Tigera operator",
        },
    ]
    if encap:
        field = felix[encap] + ("V6" if ipv == 6 and encap != "ipip" else "")
        found.append(
            {
                "what": f"Calico: the {WORDS[encap]} device MTU {value} (FelixConfiguration)",
                "command": f"calicoctl patch felixconfiguration default --patch {_patch({'spec': {field: value}})}",
                "choice": "alternative",
                "when": "with calicoctl, on installs that set no FELIX_*MTU environment variable (those take "
                "precedence over FelixConfiguration; manifest installs set them from veth_mtu)",
            }
        )
    return found


def docker(network: Network, path_mtu: int) -> tuple[list[dict], list[dict]]:
    """(settings, snippets): the MTU for containers on the default bridge and on user-defined networks."""
    inner = path_mtu  # what the measured path carries for a container's packets
    how = f"path MTU {path_mtu}"
    o = network.overlay
    settings = [
        _setting(
            "docker",
            "",
            "mtu",
            inner,
            f"Docker: daemon.json mtu {inner} = {how}",
            "/etc/docker/daemon.json (default bridge), then restart docker",
            "docker",
        ),  # fmt: skip
        _setting(
            "docker",
            "",
            "com.docker.network.driver.mtu",
            inner,
            f"Docker: network option com.docker.network.driver.mtu={inner} = {how}",
            "docker network create -o ... (user-defined "
            "networks; dockerd --default-network-opt for new ones)",
            "docker",
        ),  # fmt: skip
    ]
    if o and o.kind == "vxlan" and not o.carries_failing:
        over, said = o.overhead, f"{o.overhead} VXLAN ({'measured' if o.measured else 'fixed'})"
        settings.append(
            _setting(
                "docker",
                "vxlan",
                "com.docker.network.driver.mtu",
                path_mtu - over,
                f"Docker overlay "
                f"(Swarm, VXLAN): com.docker.network.driver.mtu={path_mtu - over} = {how} - {said}",
                "docker network create -d overlay -o com.docker.network.driver.mtu=...",
                "docker",
            )  # fmt: skip
        )
    snippets = [{"what": "/etc/docker/daemon.json (merge into the existing file, then restart docker)",
                 "format": "json", "text": json.dumps({"mtu": inner}, indent=2)}]  # fmt: skip
    return settings, snippets


def clamp_daemonset(mss4: int, mss6: int) -> tuple[list[dict], list[dict]]:
    """(commands, snippets): the MSS clamp as a rule a DaemonSet re-applies on every node: check first (-C),
    append only when missing, so restarts and re-runs do not stack duplicates."""
    m4 = f"-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss {mss4}"
    m6 = f"-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss {mss6}"
    idem4 = f"iptables -t mangle -C FORWARD {m4} 2>/dev/null || iptables -t mangle -A FORWARD {m4}"
    idem6 = f"ip6tables -t mangle -C FORWARD {m6} 2>/dev/null || ip6tables -t mangle -A FORWARD {m6}"
    commands = [
        {
            "what": "the MSS clamp, idempotent (safe to run again on every node, e.g. from a DaemonSet)",
            "command": f"{idem4}; {idem6}",
            "choice": "alternative",
            "when": "on Kubernetes nodes: the pods' traffic is forwarded by the node like a container's",
        }
    ]
    # re-checked every minute: a node's firewall reload (iptables-restore) would remove the rules
    script = f"while true; do {idem4}; {idem6}; sleep 60; done"
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "pcapmtu-mss-clamp", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "pcapmtu-mss-clamp"}},
            "template": {
                "metadata": {"labels": {"app": "pcapmtu-mss-clamp"}},
                "spec": {
                    "hostNetwork": True,
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [
                        {
                            "name": "clamp",
                            "image": CLAMP_IMAGE,
                            "command": ["sh", "-c", script],
                            "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
                        }
                    ],
                },
            },
        },
    }
    snippets = [
        {
            "what": "a DaemonSet that applies the clamp on every node (kubectl apply -f FILE; JSON is valid "
            "YAML). Its iptables must use the node's backend (iptables-nft vs legacy: check "
            "iptables -V on a node); the rules stay until removed with iptables -D",
            "format": "json",
            "text": json.dumps(manifest, indent=2),
        }
    ]
    return commands, snippets
