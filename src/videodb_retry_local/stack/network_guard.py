"""Refusing every connection that is not to this machine: tests and benchmarks install it so
that a mistake fails loudly instead of reaching the internet or another host."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def is_allowed(address: object, extra_hosts: Iterable[str] = ()) -> bool:
    """True for loopback, unix sockets, and the hosts in ``extra_hosts`` (e.g. a Docker bridge
    address the run created itself)."""
    if not isinstance(address, tuple):
        return True  # unix sockets (e.g. the Docker engine's) stay on this machine
    host = str(address[0])
    if host == "localhost" or host in set(extra_hosts):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install(label: str, extra_hosts: Callable[[], Iterable[str]] = lambda: ()) -> Callable[[], None]:
    """Guard ``socket.socket.connect`` and ``connect_ex``; returns a function that removes it.

    ``extra_hosts`` is asked at each connection, so hosts can be allowed while the guard is on.
    """
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse_unless_allowed(address: Any) -> None:
        if not is_allowed(address, extra_hosts()):
            raise ConnectionRefusedError(f"{label} network guard: {address!r} is not loopback")

    def connect(sock: socket.socket, address: Any) -> Any:
        refuse_unless_allowed(address)
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> Any:
        refuse_unless_allowed(address)
        return real_connect_ex(sock, address)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]

    def remove() -> None:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]

    return remove


@contextlib.contextmanager
def loopback_only(label: str) -> Iterator[None]:
    """The guard for the duration of a ``with`` block."""
    remove = install(label)
    try:
        yield
    finally:
        remove()
