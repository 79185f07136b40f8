"""Host-side plumbing of the pcapmtu lab: its namespace resources, certificates, tool versions.

Everything the lab starts or creates is registered in RES (netns_kit.Resources, prefix pml-), so one call
(RES.cleanup) kills exactly our children (by PID) and deletes exactly our namespaces and /etc/netns dirs --
never anything else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lab_scenarios as cat
from netns_kit import CHILD_ENV, LabError, Resources

PREFIX = "pml-"
RES = Resources(PREFIX)


# --- certificates ----------------------------------------------------------------------------------------

CERT_EXTENSIONS = """
[ca1]
basicConstraints = critical,CA:TRUE,pathlen:1
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ca2]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = @alt
[alt]
"""
# Certificates the server sends (leaf + 2 intermediates) must span several full-size segments.
MIN_CHAIN_BYTES = 6000
LEAF_EXTRA_SANS = 120


def make_pki(workdir: Path) -> dict:
    """Root -> intermediate 1 -> intermediate 2 -> leaf, all RSA 4096; the leaf has many SANs.

    Keys live in `workdir` (a temp dir) only: nothing secret is ever written next to the captures.
    """
    sans = [cat.NAMES["api"], cat.NAMES["jenkins"], "*.example"]
    sans += [f"mirror-{i:03d}.updates.jenkins-updates.example" for i in range(LEAF_EXTRA_SANS)]
    alt = "".join(f"DNS.{i} = {name}\n" for i, name in enumerate(sans, 1))
    (workdir / "ext.cnf").write_text(CERT_EXTENSIONS + alt)
    w = str(workdir)
    subj = "/O=pcapmtu lab/OU=test only/CN="

    def openssl(args: str, *quoted: str) -> None:
        RES.execute(["openssl", *args.split(), *quoted])

    def new_key(name: str, cn: str) -> None:
        openssl(
            f"req -new -newkey rsa:4096 -nodes -keyout {w}/{name}.key -out {w}/{name}.csr -subj", subj + cn
        )

    def sign(name: str, issuer: str, section: str, serial: int) -> None:
        openssl(
            f"x509 -req -in {w}/{name}.csr -CA {w}/{issuer}.pem -CAkey {w}/{issuer}.key -set_serial {serial} "
            f"-days 3650 -sha256 -extfile {w}/ext.cnf -extensions {section} -out {w}/{name}.pem"
        )

    openssl(
        f"req -x509 -newkey rsa:4096 -nodes -keyout {w}/root.key -out {w}/root.pem -days 3650 -sha256 "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -subj",
        subj + "pcapmtu Lab Root CA",
    )
    new_key("int1", "pcapmtu Lab Intermediate CA 1")
    sign("int1", "root", "ca1", 4097)
    new_key("int2", "pcapmtu Lab Intermediate CA 2")
    sign("int2", "int1", "ca2", 4098)
    new_key("leaf", cat.NAMES["jenkins"])
    sign("leaf", "int2", "leaf", 4099)
    served = ("leaf", "int2", "int1")  # what the server sends; the client trusts root.pem
    chain = workdir / "chain.pem"
    chain.write_text("".join((workdir / f"{n}.pem").read_text() for n in served))
    sizes = {n: len(_der(workdir / f"{n}.pem")) for n in served}
    if sum(sizes.values()) < MIN_CHAIN_BYTES:
        raise LabError(f"certificate chain is only {sum(sizes.values())} bytes; need > {MIN_CHAIN_BYTES}")
    return {"root": workdir / "root.pem", "chain": chain, "key": workdir / "leaf.key", "der_sizes": sizes}


def _der(pem: Path) -> bytes:
    cmd = ["openssl", "x509", "-in", str(pem), "-outform", "DER"]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def tool_versions() -> dict:
    def first_line(cmd: list[str]) -> str:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=CHILD_ENV)
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr) else "?"

    return {
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "tcpdump": first_line(["tcpdump", "--version"]),
        "tshark": first_line(["tshark", "--version"]),
        "curl": first_line(["curl", "--version"]),
        "openssl": first_line(["openssl", "version"]),
        "dnsmasq": first_line(["dnsmasq", "--version"]),
        "iproute2": first_line(["ip", "-V"]),
        "iptables": first_line(["iptables", "-V"]),
        "ethtool": first_line(["ethtool", "--version"]),
    }
