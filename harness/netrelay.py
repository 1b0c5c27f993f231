"""The relay between the test's network namespace and a data center's (harness.netfaults): a
process of its own that enters the data center's namespace with setns(2) only to create its
sockets, one thread at a time, so that no gRPC thread of the test ever changes namespace.

    python -m harness.netrelay /run/netns/NAME

reads `out PORT` (listen on 127.0.0.1:PORT here, connect to 127.0.0.1:PORT inside, from the
address every partition exempts) and `in PORT` (the other way round) on stdin, answers `ok PORT`
or `error WHY`, and exits when stdin closes (the test process is gone).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import sys
import threading
from collections.abc import Iterator

from harness.netfaults import HARNESS_SOURCE, LOOPBACK

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextlib.contextmanager
def _in_namespace(fd: int, home: int) -> Iterator[None]:
    """This thread in namespace `fd` (sockets made meanwhile stay there), then back `home`."""
    _setns(fd)
    try:
        yield
    finally:
        _setns(home)


def _socket(fd: int, home: int) -> socket.socket:
    with _in_namespace(fd, home):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def _pump(source: socket.socket, sink: socket.socket, done: threading.Barrier) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:  # one side reset or closed: end both
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(threading.BrokenBarrierError):
        done.wait(timeout=3600)
    for sock in (source, sink):
        sock.close()


def _serve(listener: socket.socket, port: int, target: int, home: int, source: str | None) -> None:
    """Accept forever; each connection is relayed to 127.0.0.1:PORT in namespace `target`."""
    while True:
        client, _ = listener.accept()
        upstream = _socket(target, home)
        try:
            if source is not None:
                upstream.bind((source, 0))
            upstream.settimeout(10)
            upstream.connect((LOOPBACK, port))
            upstream.settimeout(None)
        except OSError:
            upstream.close()
            client.close()  # the caller sees its connection closed: nothing listens there
            continue
        done = threading.Barrier(2)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b, done), daemon=True).start()


def _bridge(netns_path: str) -> int:
    """Read `out PORT` / `in PORT` lines on stdin, answer `ok PORT` or `error WHY`; exit when
    stdin closes (the test process is gone)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    inner = os.open(netns_path, os.O_RDONLY)
    for line in sys.stdin:
        try:
            kind, port_text = line.split()
            port = int(port_text)
            if kind == "out":  # listen outside, connect inside from the exempt address
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                target, source = inner, HARNESS_SOURCE
            elif kind == "in":  # listen inside, connect outside
                listener = _socket(inner, home)
                target, source = home, None
            else:
                raise ValueError(f"unknown command {kind!r}")
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, port))
            listener.listen(64)
            port = listener.getsockname()[1]
            threading.Thread(
                target=_serve, args=(listener, port, target, home, source), daemon=True
            ).start()
            print(f"ok {port}", flush=True)
        except Exception as exc:
            print(f"error {type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 2:
        sys.exit(_bridge(sys.argv[1]))
    sys.exit("usage: python -m harness.netrelay /run/netns/NAME")
