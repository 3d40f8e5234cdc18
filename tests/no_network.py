"""`python tests/no_network.py ARGS...`: pllm as a real process that cannot make an IP socket.

Every AF_INET or AF_INET6 socket the process tries to create fails (OSError ENETUNREACH) and is written to
the file named by PLLM_TEST_NETWORK_LOG, so a library that catches the error is still caught. Unix sockets
(`pllm serve`) work as usual. test_no_network.py runs ingest, memory search, status and ask this way, inside
a network namespace too where `unshare -n` is allowed.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

IP_FAMILIES = (-1, socket.AF_INET, socket.AF_INET6)  # -1: socket.socket()'s default, AF_INET


class _NoIpSocket(socket.socket):
    def __init__(self, family: Any = -1, type: Any = -1, proto: Any = -1, fileno: Any = None) -> None:
        if fileno is None and family in IP_FAMILIES:
            log = os.environ.get("PLLM_TEST_NETWORK_LOG")
            if log:
                with open(log, "a", encoding="utf-8") as handle:
                    handle.write(f"IP socket ({family}) from:\n{''.join(traceback.format_stack(limit=8))}\n")
            raise OSError(errno.ENETUNREACH, "no network: tests/no_network.py refuses IP sockets")
        super().__init__(family, type, proto, fileno)


def block_ip_sockets() -> None:
    socket.socket = _NoIpSocket  # type: ignore[misc]


if __name__ == "__main__":
    block_ip_sockets()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's pllm_cli
    from pllm_cli.cli import main

    main(sys.argv[1:])
