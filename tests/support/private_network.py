"""Run a test module again inside a private network namespace where only loopback exists.

Ray's processes listen on the node's address; inside ``unshare -n`` (root) or ``unshare -rn``
(an unprivileged user namespace) the only interface is ``lo``, so every one of Ray's sockets is
on 127.0.0.1 and nothing can leave the machine. ``rerun_inside`` re-executes pytest on a module
there (the module's own tests run only when ``inside()``); ``listening_addresses`` reads the
kernel's socket tables so a test can show what was bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = "DREAMCAD_PRIVATE_NETWORK"


def inside() -> bool:
    return os.environ.get(MARKER) == "1"


def unshare_command() -> list[str] | None:
    """The unshare invocation this machine permits (root: -n; others: -rn), or None."""
    for flags in (["-n"], ["-rn"]):
        probe = subprocess.run(["unshare", *flags, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["unshare", *flags]
    return None


def rerun_inside(module: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """pytest on ``module`` inside a fresh network namespace with ``lo`` up."""
    unshare = unshare_command()
    assert unshare is not None
    script = 'ip link set lo up && exec "$0" -m pytest "$1" -q -x -p no:cacheprovider -rs'
    return subprocess.run(
        [*unshare, "sh", "-c", script, sys.executable, str(module)],
        cwd=REPO,
        env={**os.environ, MARKER: "1", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def interfaces() -> list[str]:
    """The network interfaces of this namespace (/proc/net follows the namespace; /sys does
    not unless remounted)."""
    with open("/proc/net/dev") as lines:
        return sorted(line.split(":")[0].strip() for line in list(lines)[2:])


def listening_addresses() -> set[str]:
    """Local IP addresses of every listening TCP socket in this namespace (IPv4 and IPv6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                address, state = fields[1].split(":")[0], fields[3]
                if state == "0A" and len(address) == width:  # 0A: LISTEN
                    found.add(_ip(address))
    return found


def _ip(hex_address: str) -> str:
    """/proc/net/tcp's little-endian hex words as an IP string."""
    words = [bytes.fromhex(hex_address[i:i + 8])[::-1] for i in range(0, len(hex_address), 8)]
    raw = b"".join(words)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw)
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return "::ffff:" + ".".join(str(b) for b in raw[12:])
    return ":".join(raw[i:i + 2].hex() for i in range(0, 16, 2))
