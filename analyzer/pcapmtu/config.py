"""Thresholds of the diagnosis, in one documented place (overridable from the CLI and the API)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """Defaults chosen from RFC timers and the lab captures; see docs/detectors.md."""

    stall_s: float = 1.0  # a silence this long inside a connection is a stall (Linux's initial RTO is 1 s)
    slow_response_s: float = 2.0  # request-to-first-byte this long with no loss: the server is slow
    lossy_retrans_ratio: float = 0.005  # retransmitted share of a direction's packets that makes a link lossy
    offload_margin: int = 0  # bytes over the largest MTU before a packet counts as an offload super-packet
    # a connection captured without its handshake, seen in two captures, starts within this many seconds
    # of the other once the clock offset is taken out (handshakes pair by sequence number alone)
    pairing_window_s: float = 5.0
    dup_copy_min: int = 10  # interface copies before the capture-quality finding is raised


@dataclass(frozen=True)
class KnownFacts:
    """Facts the engineer states (`--host-mtu`, `--container-mtu`) or `pcapmtu capture` recorded beside the
    captures (pcapmtu-capture.json); they sharpen, never required."""

    host_mtu: int | None = None
    container_mtu: int | None = None
    # docker, kubernetes, or auto: from the captures (Kubernetes only on strong evidence, else both)
    platform: str = "auto"
    clamp_rules: tuple[str, ...] = ()  # MSS clamp rules found on the docker host while it captured
    recorded_platform: str | None = None  # "docker": `pcapmtu capture` took a Docker container's captures
