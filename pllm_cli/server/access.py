"""Who may use `pllm serve --http`: the address it listens on (loopback unless --allow-remote) and the bearer
token every request must carry, kept in the home (0600) and made on first use.

Light on purpose: `pllm serve --token` and the address check run before any model is loaded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from pathlib import Path

from pllm_cli.errors import InputError
from pllm_cli.paths import ensure_private_dir

DEFAULT_HOST = "127.0.0.1"


def read_or_create_token(path: Path) -> str:
    """The token in `path`, made (0600, 256 random bits) if there is none yet."""
    ensure_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(path, 0o600)  # a copy restored by hand may have come back readable by others
    token = path.read_text(encoding="ascii").strip()
    if not token:
        raise InputError(f"the token file {path} is empty", hint=f"remove it and a new token is made: rm {path}")
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(text: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """HOST:PORT, [IPV6]:PORT or PORT (on 127.0.0.1) as (host, port); InputError if it is not one, or if the
    host is not a loopback address and `allow_remote` is not given. Port 0 picks a free port."""
    text = text.strip()
    host, _, port_text = text.rpartition(":")
    if not host:
        host = DEFAULT_HOST
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port_text.isdigit() or int(port_text) > 65535:
        raise InputError(
            f"--http takes HOST:PORT or PORT, not {text!r}", hint="for example: pllm serve --http 127.0.0.1:8642"
        )
    if not allow_remote and not is_loopback(host):
        raise InputError(
            f"--http {text}: {host} is not a loopback address, so other machines could reach your memories",
            hint="use 127.0.0.1 or ::1; to listen there anyway (behind your own TLS proxy): add --allow-remote",
        )
    return host, int(port_text)
