"""The two captures on Kubernetes, as exact commands for one pod: tcpdump in the pod's network namespace and on
its node's uplink at once, the interface MTUs written down, and the files copied back.

Nothing here runs anything: `commands()` returns the lines (the CLI prints them, `pcapmtu capture --print-k8s`),
built from validated Kubernetes names only, so every line pastes into a shell as it is. The routes
(docs/capturing.md#kubernetes):

- the pod side in an ephemeral debug container (`kubectl debug POD --profile=netadmin`): it joins the pod's
  network namespace, writes the file into its own filesystem and stays alive (`sleep`) so `kubectl cp` (which
  runs `tar` in it) can copy the file out after tcpdump stopped;
- the node side in a node debug pod (`kubectl debug node/NODE --profile=sysadmin`: the node's network and PID
  namespaces, the node's filesystem at /host), capturing the uplink the node routes outward by;
- where ephemeral containers are refused (Pod Security "baseline" forbids NET_RAW), the pod side from the same
  node debug pod: the pod's first container's PID from the node's `crictl` (containerd or CRI-O), then
  `nsenter -n` into its network namespace with the debug image's tcpdump.

Each tcpdump writes its PID to a file, so stopping early signals that process and no other (a node debug pod
sees every process of the node).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from ..errors import UsageError

DEFAULT_IMAGE = "nicolaka/netshoot"  # tcpdump, iproute2, curl, ping, tar (kubectl cp needs tar)
FILTER = "port 53 or port 443 or port 80 or icmp or icmp6"
# The node's uplink also carries the CNI's tunnel (pod-to-pod across nodes): its outer packets, so pcapmtu
# sees the encapsulation and its overhead (VXLAN, Geneve, WireGuard, IP-in-IP, GRE; docs/fixes.md)
TUNNELS = "udp port 4789 or udp port 8472 or udp port 6081 or udp port 51820 or udp port 51821 or udp port 51871 or ip proto 4 or ip proto 47"
MAX_PACKETS = 200_000  # a size cap: at most ~300 MB of full-size packets per file
RUNTIME_SOCKETS = {
    "containerd": "unix:///run/containerd/containerd.sock",
    "cri-o": "unix:///var/run/crio/crio.sock",
}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
_PORTS = re.compile(r"\d{1,5}")


@dataclass(frozen=True)
class Step:
    """One step of the recipe: what it does, where the commands run, and the commands (one per line)."""

    title: str
    where: str  # "your workstation (kubectl)" or "..."
    commands: tuple[str, ...]
    note: str = ""


def _check(value: str, pattern: re.Pattern, what: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or not pattern.fullmatch(value):
        raise UsageError(f"{what} {value!r} is not a valid Kubernetes name (lower case letters, digits, '-')")
    return value


def _tcpdump(iface: str, out: str, capture_filter: str, seconds: int) -> str:
    """The capture line for inside `sh -c '...'`: double quotes only (the script is single-quoted)."""
    return (
        f"timeout -s INT {seconds} tcpdump -i {iface} -s 0 -U --immediate-mode -n -Z root -c {MAX_PACKETS} "
        f'-w {out} "{capture_filter}"'
    )


def _background(line: str, pid_file: str) -> str:
    """Run `line` in the background, note its PID (for the stop command), wait for it."""
    return f"{line} & echo $! > {pid_file}; wait"


def commands(
    pod: str,
    namespace: str = "default",
    *,
    image: str = DEFAULT_IMAGE,
    container: str | None = None,
    runtime: str = "containerd",
    seconds: int = 300,
    ports: tuple[int, ...] = (),
    directory: str = "/tmp",
    debug_namespace: str = "default",
) -> list[Step]:
    """The recipe for `pod` in `namespace`. `container`: the pod's container to reproduce from and to
    target (its process namespace); `runtime`: containerd or cri-o (the node-side route's crictl socket);
    `ports`: service ports beyond 80 and 443; `directory`: where the files are written inside the debug
    containers; `debug_namespace`: where the node debug pod is created (it must admit privileged pods)."""
    _check(pod, _DNS_SUBDOMAIN, "pod", 253)
    _check(namespace, _DNS_LABEL, "namespace", 63)
    _check(debug_namespace, _DNS_LABEL, "namespace", 63)
    if container is not None:
        _check(container, _DNS_LABEL, "container", 63)
    if not _IMAGE.fullmatch(image):
        raise UsageError(f"image {image!r} is not an image reference")
    if runtime not in RUNTIME_SOCKETS:
        raise UsageError(f"runtime must be one of {', '.join(RUNTIME_SOCKETS)}, not {runtime!r}")
    if not (isinstance(seconds, int) and 1 <= seconds <= 86400):
        raise UsageError(f"seconds must be 1 to 86400, not {seconds!r}")
    if any(not (isinstance(p, int) and 1 <= p <= 65535) for p in ports):
        raise UsageError(f"ports must be 1 to 65535, not {ports!r}")
    if not re.fullmatch(r"/[A-Za-z0-9._/-]*", directory):
        raise UsageError(f"directory {directory!r} must be an absolute path of letters, digits, '._-/'")
    base = FILTER + "".join(f" or port {p}" for p in ports)
    pod_file, node_file = f"{directory}/pod.pcap", f"{directory}/node.pcap"
    pod_pid, node_pid = f"{directory}/pod-capture.pid", f"{directory}/node-capture.pid"
    netns_pid = f"{directory}/pod-netns.pid"  # a process of the pod: nsenter's target for the reproduction
    target = f" --target={container}" if container else ""
    app = f" -c {container}" if container else ' -c "$DBG"'

    uplink = 'UPLINK=$(ip -o route get 1.1.1.1 | sed -n "s/.* dev \\([^ ]*\\).*/\\1/p")'
    on_uplink = _tcpdump('"$UPLINK"', node_file, f"{base} or {TUNNELS}", seconds)
    in_pod = _tcpdump("eth0", pod_file, base, seconds)
    node_script = (
        f'{uplink}; echo "uplink: $UPLINK"; ip -o link show; {_background(on_uplink, node_pid)}; sleep 3600'
    )
    pod_script = f"ip -o link show eth0; {_background(in_pod, pod_pid)}; sleep 3600"
    crictl = f"chroot /host crictl --runtime-endpoint {RUNTIME_SOCKETS[runtime]}"
    find_pid = (
        f'POD_ID=$({crictl} pods --namespace {namespace} --name "^{pod.replace(".", "[.]")}\\$" --state ready -q); '
        f'CID=$({crictl} ps --pod "$POD_ID" -q | head -n 1); '
        f'PID=$({crictl} inspect --output go-template --template "{{{{.info.pid}}}}" "$CID"); '
        f'echo "pod network namespace: PID $PID"; echo "$PID" > {netns_pid}; nsenter -t "$PID" -n ip -o link show eth0'
    )
    both_script = (
        f"{uplink}; {find_pid}; ip -o link show; "
        f"{on_uplink} & echo $! > {node_pid}; "
        f'nsenter -t "$PID" -n {in_pod} & echo $! > {pod_pid}; '
        "wait; sleep 3600"
    )
    q = shlex.quote
    pod_logs = 'kubectl logs -n "$NS" "$POD" -c "$DBG"'
    node_logs = f'kubectl logs -n {debug_namespace} "$NODE_POD"'
    node_debug = (
        f'NODE_POD=$(kubectl debug -n {debug_namespace} "node/$NODE" --image={image} --profile=sysadmin -- sh -c '
        "{script} 2>&1 | sed -n 's/^Creating debugging pod \\([^ ]*\\) .*/\\1/p'); "
        'echo "node debug pod: $NODE_POD"'
    )
    return [
        Step(
            "Name the pod, find its node, and pick a name for the debug container",
            "your workstation (kubectl)",
            (
                f"NS={q(namespace)} POD={q(pod)} DBG=pcapmtu-$(date +%H%M%S)",
                'NODE=$(kubectl get pod -n "$NS" "$POD" -o jsonpath=\'{.spec.nodeName}\'); echo "node: $NODE"',
            ),
            "An ephemeral container's name cannot be reused in the same pod: DBG is new on every run.",
        ),
        Step(
            "Capture in the pod's network namespace: an ephemeral debug container",
            "your workstation (kubectl)",
            (
                f'kubectl debug -n "$NS" "$POD" --image={image} --profile=netadmin -c "$DBG"{target} -- '
                f"sh -c {q(pod_script)}",
                _wait(pod_logs, "listening on"),
            ),
            "--profile=netadmin (kubectl 1.27 or later) adds NET_ADMIN and NET_RAW, which tcpdump needs. A "
            "namespace enforcing the Pod Security 'baseline' or 'restricted' level refuses them, and a pod whose "
            "securityContext sets a non-root user makes the debug container non-root too: then use the "
            "node-side route (last step). The container keeps running (sleep 3600) so that kubectl cp can copy "
            "the file.",
        ),
        Step(
            "Capture on the node's uplink: a node debug pod",
            "your workstation (kubectl)",
            (
                node_debug.format(script=q(node_script)),
                _wait(node_logs, "listening on"),
            ),
            "The node debug pod shares the node's network namespace, so the route to 1.1.1.1 names the uplink "
            "(for a server on another route, put its address there). The filter also keeps the CNI's tunnel "
            "(VXLAN, Geneve, WireGuard, IP-in-IP, GRE): pcapmtu measures its overhead from it.",
        ),
        Step(
            "Reproduce the failing request while both run (from the pod's network namespace)",
            "your workstation (kubectl)",
            (
                f'kubectl exec -n "$NS" "$POD"{app} -- curl -v --max-time 20 -o /dev/null https://SERVER/',
                'kubectl exec -n "$NS" "$POD" -c "$DBG" -- ping -c 3 -M do -s 1422 SERVER',
                'kubectl exec -n "$NS" "$POD" -c "$DBG" -- ping -c 3 -M do -s 1472 SERVER',
            ),
            "SERVER is the service that hangs. The debug container shares the pod's network namespace, so its "
            "curl and ping are the pod's traffic; without -c the app's own curl (if its image has one) is the "
            "truer reproduction. 1422 + 28 = 1450-byte and 1472 + 28 = 1500-byte packets, DF set.",
        ),
        Step(
            f"Stop both captures (or wait {seconds} s), then copy the files and the logs back",
            "your workstation (kubectl)",
            (
                f'kubectl exec -n "$NS" "$POD" -c "$DBG" -- sh -c \'kill -INT "$(cat {pod_pid})"\'',
                f'kubectl exec -n {debug_namespace} "$NODE_POD" -- sh -c \'kill -INT "$(cat {node_pid})"\'',
                _wait(pod_logs, "packets captured"),
                _wait(node_logs, "packets captured"),
                f'kubectl cp -n "$NS" -c "$DBG" "$POD:{pod_file}" pod.pcap',
                f'kubectl cp -n {debug_namespace} "$NODE_POD:{node_file}" node.pcap',
                f"{pod_logs} > pod-capture.log; {node_logs} > node-capture.log",
                f'kubectl delete pod -n {debug_namespace} "$NODE_POD"',
            ),
            "The logs hold the interfaces' MTUs (ip -o link) and tcpdump's 'packets dropped by kernel', which "
            "must be 0. An ephemeral container cannot be removed: it ends when its sleep does.",
        ),
        Step(
            "Then analyse",
            "your workstation",
            (
                "pcapmtu analyze node.pcap pod.pcap --platform kubernetes --out report/",
                "pcapmtu analyze --before report/report.json --after AFTER_DIR/   # after the fix: did it take?",
            ),
        ),
        Step(
            f"Instead of the ephemeral container: both captures from the node debug pod ({runtime})",
            "your workstation (kubectl)",
            (
                node_debug.format(script=q(both_script)),
                _wait(node_logs, "listening on", 2),
                f'kubectl exec -n {debug_namespace} "$NODE_POD" -- sh -c \'nsenter -t "$(cat {netns_pid})" -n '
                "curl -v --max-time 20 -o /dev/null https://SERVER/'",
                "# then stop both, wait until tcpdump has written its last packets, copy, keep the log, clean up:",
                f'kubectl exec -n {debug_namespace} "$NODE_POD" -- sh -c '
                f'\'kill -INT "$(cat {node_pid})" "$(cat {pod_pid})"\'',
                _wait(node_logs, "packets captured", 2),
                f'kubectl cp -n {debug_namespace} "$NODE_POD:{node_file}" node.pcap',
                f'kubectl cp -n {debug_namespace} "$NODE_POD:{pod_file}" pod.pcap',
                f"{node_logs} > node-capture.log",
                f'kubectl delete pod -n {debug_namespace} "$NODE_POD"',
            ),
            "For namespaces that refuse NET_RAW to ephemeral containers. The node's crictl finds the pod's "
            f"first running container and its PID ({RUNTIME_SOCKETS[runtime]}); nsenter -n runs the debug "
            "image's tcpdump in that PID's network namespace, which all the pod's containers share. Run step 1 "
            "first (NS, POD, NODE).",
        ),
    ]


def _wait(logs: str, text: str, count: int = 1, seconds: int = 120) -> str:
    """Poll a container's log until tcpdump said `text` (`count` times), at most `seconds`; then show the log's
    end, which holds tcpdump's line or the reason it did not start."""
    seen = f"grep -c '{text}' | grep -qx {count}" if count > 1 else f"grep -q '{text}'"
    return (
        f"for i in $(seq {seconds}); do {logs} 2>&1 | {seen} && break; sleep 1; done; {logs} 2>&1 | tail -n 3"
    )


def render(steps: list[Step]) -> str:
    """The recipe as the terminal prints it: each step a comment block, then its commands, one per line."""
    out = []
    for n, step in enumerate(steps, start=1):
        out.append(f"# {n}. {step.title} - on {step.where}")
        if step.note:
            out += [f"#    {line}" for line in _wrap(step.note)]
        out += [*step.commands, ""]
    return "\n".join(out)


def _wrap(text: str, width: int = 100) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines
