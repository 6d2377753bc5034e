"""Say which setting to change when a port the gateway needs is taken, before a server starts."""

from __future__ import annotations

import errno
import socket

from app.settings import SettingsError


def ensure_port_free(host: str, port: int, setting: str) -> None:
    """Raise SettingsError naming `setting` when (host, port) cannot be listened on.

    Servers report a taken port as a bind error deep in their start-up log; this check
    turns the common case (another gateway, or anything else, already there) into one
    line that says what to change. The server's own bind stays the final word.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # the server reports an unresolvable host itself
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As the servers bind: a port left in TIME_WAIT by a stopped gateway is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SettingsError(
                    f"{setting}: port {port} on {host} is already in use (another pwbi-gateway "
                    f"running?); stop it or set {setting} to a free port"
                ) from None
            if exc.errno == errno.EACCES:
                raise SettingsError(
                    f"{setting}: not allowed to listen on port {port} (ports below 1024 "
                    "need privileges); choose a higher one"
                ) from None
            raise
