"""The roles of the captures: checked against where each was taken, and found for those given without one.

Roles given on the command line are a claim. A host capture that holds only the client's own traffic, at
its initial TTL, while the "container" capture shows the same connections forwarded, was given the other
way round; the analysis uses the right roles and says so. A capture given without a role (`--capture`, a
lone positional) is placed by its vantage point: near the client it is a container's, in between the
docker host's, at the server the server's.
"""

from __future__ import annotations

from ..ingest.capture import Capture
from .vantage import Vantage, infer

NEAR_FIRST = {"client": 0, "middle": 1, "server": 2}
ROLE_FOR = {"client": "container", "middle": "host", "server": "server", "unknown": "container"}
# positions that a role given on the command line cannot have (a docker host's capture holds its own
# connections too, so "client" does not contradict "host")
CONTRADICTS = {"container": ("server",), "host": ("server",), "server": ("client", "middle")}
WHAT = {
    "container": "a container's capture",
    "host": "the docker host's capture",
    "server": "the server's capture",
}


def place(given: dict[str, Capture]) -> tuple[dict[str, Capture], dict[str, Vantage], list[str]]:
    """(captures by their final role, each one's vantage, the changes made, in words)."""
    vantage = {role: infer(cap) for role, cap in given.items()}
    captures = dict(given)
    changes: list[str] = []
    for near, far in (("container", "host"), ("container", "server"), ("host", "server")):
        if near in captures and far in captures and _reversed(vantage[near], vantage[far]):
            captures[near], captures[far] = captures[far], captures[near]
            vantage[near], vantage[far] = vantage[far], vantage[near]
            changes.append(
                f"{captures[near].name} and {captures[far].name} were given the other way round: "
                f"{captures[near].name} was taken nearer the client ({_why(vantage[near])}), so it is analysed "
                f"as the {near} capture and {captures[far].name} as the {far} capture"
            )
    if "host" in captures and "server" not in captures and vantage["host"].position == "server":
        # HOST CONTAINER given as CONTAINER SERVER: after the swap the far capture is the server's own
        captures["server"], vantage["server"] = captures.pop("host"), vantage.pop("host")
        changes.append(
            f"{captures['server'].name} was taken {vantage['server'].where}: analysed as "
            "the server's capture, not the docker host's"
        )
    for role, cap in captures.items():
        v = vantage[role]
        if not role.startswith("capture") and v.position in CONTRADICTS.get(role.rstrip("0123456789"), ()):
            changes.append(
                f"{cap.name} was given as the {role} capture, but it looks taken "
                f"{v.where} ({_why(v)}); analysed as given: check the roles"
            )
    for role in [r for r in captures if r.startswith("capture")]:
        cap, v = captures.pop(role), vantage.pop(role)
        new = _free(captures, ROLE_FOR[v.position])
        captures[new], vantage[new] = cap, v
        changes.append(
            f"{cap.name} (no role given) was taken {v.where}: analysed as {WHAT.get(new.rstrip('0123456789'), new)}"
        )
    return captures, {r: vantage[r] for r in captures}, changes


def _reversed(near: Vantage, far: Vantage) -> bool:
    """Whether the capture given as the nearer one to the client is really the farther one."""
    if near.position in NEAR_FIRST and far.position in NEAR_FIRST:
        if NEAR_FIRST[near.position] > NEAR_FIRST[far.position]:
            return True
        if NEAR_FIRST[near.position] < NEAR_FIRST[far.position]:
            return False
    if near.client_hops is not None and far.client_hops is not None:
        return near.client_hops > far.client_hops
    return False


def _free(captures: dict[str, Capture], role: str) -> str:
    if role not in captures:
        return role
    if role != "container":
        role = "container"
        if role not in captures:
            return role
    i = 2
    while f"container{i}" in captures:
        i += 1
    return f"container{i}"


def _why(v: Vantage) -> str:
    return v.reasons[0] if v.reasons else v.position
