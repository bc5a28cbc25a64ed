"""The local cluster's network as tools/local-network.sh wrote it (``network.env``).

Tests read the mode and the addresses from here, never hard-code them: with separate
hosts every node, the login node ``ot-login`` and the internet ``ot-internet`` are
network namespaces on their own addresses; in loopback mode all of them are 127.0.0.x.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

NETWORK_ENV = os.environ.get("OT_LOCAL_NETWORK_ENV", "/var/lib/ot-hpc-local/network.env")


@dataclass(frozen=True)
class LocalNetwork:
    mode: str
    controller: str
    login_host: str
    login_addr: str
    login_internet_addr: str  # where the internet sees the login node's requests come from
    internet_host: str
    internet_addr: str
    internet_port: int
    login_netns: str = ""
    internet_netns: str = ""
    nodes: Dict[str, str] = field(default_factory=dict)  # n1 -> its address
    node_netns: Dict[str, str] = field(default_factory=dict)  # n1 -> ot-n1 (separate hosts)

    @property
    def separate(self) -> bool:
        return self.mode == "separate"

    @property
    def internet(self) -> str:
        return f"{self.internet_host}:{self.internet_port}"

    @property
    def internet_url(self) -> str:
        return f"http://{self.internet}/egress"

    def run_in(self, netns: Optional[str], argv: Sequence[str], timeout: float = 30,
               **kwargs) -> subprocess.CompletedProcess:
        """Run argv inside network namespace ``netns`` (as is when it is empty)."""
        prefix: List[str] = ["nsenter", f"--net=/run/netns/{netns}", "--"] if netns else []
        return subprocess.run(prefix + list(argv), capture_output=True, text=True, timeout=timeout,
                              **kwargs)


def _values(path: str) -> Dict[str, str]:
    values = {}
    with open(path) as handle:
        for line in handle:
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key] = value
    return values


def read_network(path: str = NETWORK_ENV) -> Optional[LocalNetwork]:
    """The network of the running local cluster, or None when it wrote none."""
    try:
        values = _values(path)
    except OSError:
        return None
    names = [n for n in values.get("NODES", "").split(",") if n]
    addrs = values.get("NODE_ADDRS", "").split(",")
    spaces = values.get("NODE_NETNS", "").split(",")
    return LocalNetwork(
        mode=values.get("OT_LOCAL_NETWORK", "loopback"), controller=values.get("CONTROLLER_ADDR", ""),
        login_host=values.get("LOGIN_HOST", ""), login_addr=values.get("LOGIN_ADDR", ""),
        login_internet_addr=values.get("LOGIN_INTERNET_ADDR", ""),
        internet_host=values.get("INTERNET_HOST", ""), internet_addr=values.get("INTERNET_ADDR", ""),
        internet_port=int(values.get("INTERNET_PORT") or 0), login_netns=values.get("LOGIN_NETNS", ""),
        internet_netns=values.get("INTERNET_NETNS", ""), nodes=dict(zip(names, addrs)),
        node_netns={n: s for n, s in zip(names, spaces) if s},
    )
