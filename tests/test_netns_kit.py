"""sample_pcaps/netns_kit.py, the namespace kit of the lab and of benchmarks/make_capture.py (no root needed):
the allowed address ranges, and that both tools load it from a plain checkout."""

from __future__ import annotations

import importlib.util
import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sample_pcaps"))
import lab_scenarios  # noqa: E402
import netns_kit  # noqa: E402


@pytest.mark.parametrize(
    "net",
    ["172.17.0.2", "172.17.0.0/16", "10.66.0.128/25", "198.19.255.1", "fd00:66:1::10", "fd00:17::/64"],
)
def test_allowed_ranges(net: str) -> None:
    assert netns_kit.allowed(net)
    assert netns_kit.allowed(net, loopback=False)


@pytest.mark.parametrize(
    "net", ["172.16.0.1", "10.66.1.0/24", "198.20.0.1", "8.8.8.8", "fe80::1", "2001:db8::1"]
)
def test_outside_the_ranges(net: str) -> None:
    assert not netns_kit.allowed(net)


def test_loopback_only_when_asked() -> None:
    assert netns_kit.allowed("127.0.0.1") and netns_kit.allowed("::1")
    assert not netns_kit.allowed("127.0.0.1", loopback=False)
    with pytest.raises(lab_scenarios.CatalogError, match="outside the lab's address ranges"):
        lab_scenarios.Plan(container_net=ipaddress.ip_network("127.0.0.0/24")).validate()


def test_make_capture_uses_the_kit() -> None:
    """make_capture.py finds the kit through its own sys.path insert, and its addresses pass the check."""
    spec = importlib.util.spec_from_file_location("make_capture", ROOT / "benchmarks" / "make_capture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.check_addresses()
    assert module.RES.prefix == "pmb-"
    assert issubclass(module._DualStackServer, netns_kit.DualStackHTTPServer)


@pytest.mark.parametrize("script", ["benchmarks/make_capture.py", "sample_pcaps/lab.py"])
def test_help_from_another_directory(script: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
