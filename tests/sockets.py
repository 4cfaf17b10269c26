"""What a tree of processes listens on, read from /proc, and whether a listener answers a caller
without credentials. Probes only ever go to 127.0.0.1: a socket bound to 0.0.0.0 or [::]
answers there too, and nothing is sent to any other address."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import httpx

PROC = Path("/proc")
LISTEN = "0A"  # TCP state in /proc/net/tcp
HTTP_PATHS = ("/", "/api/version", "/metrics", "/stats", "/v1/models",
              "/api/serve/applications/")
# Read-only calls, one per kind of Ray gRPC server, sent with an empty (default) request.
RAY_GRPC_METHODS = (
    "/ray.rpc.NodeInfoGcsService/GetAllNodeInfo",      # GCS
    "/ray.rpc.NodeManagerService/GetNodeStats",        # raylet
    "/ray.rpc.CoreWorkerService/NumPendingTasks",      # workers and drivers
    "/ray.rpc.ReporterService/HealthCheck",            # dashboard agent
    "/ray.rpc.LogService/ListLogs",                    # dashboard agent
    "/ray.rpc.events.EventAggregatorService/AddEvents",  # dashboard agent
    "/ray.rpc.RayletDriver/ClusterInfo",               # Ray client server
    "/ray.serve.ASGIService/HandleRequest",            # Serve replicas' inter-deployment gRPC
    "/ray.serve.RayServeAPIService/Healthz",           # Serve's gRPC proxy
)
REFUSED = {"UNAUTHENTICATED", "PERMISSION_DENIED"}
NOT_THERE = {"UNIMPLEMENTED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL"}


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    pid: int
    command: str

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback or (
            self.host.startswith("::ffff:") and ipaddress.ip_address(
                self.host.removeprefix("::ffff:")).is_loopback)

    def __str__(self) -> str:
        return f"{self.host}:{self.port} pid {self.pid} {self.command[:80]}"


def descendants(root: int) -> set[int]:
    """`root` and every process below it, by parent pid."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        children.setdefault(_ppid(pid), []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def alive(pids: set[int]) -> set[int]:
    """Those still running (a zombie has finished)."""
    return {pid for pid in pids if _state(pid) not in (None, "Z", "X")}


def listeners(pids: set[int]) -> list[Listener]:
    """Every TCP socket in LISTEN state that one of `pids` holds."""
    owners = _socket_owners(pids)
    found = []
    for table, parse in (("tcp", _ipv4), ("tcp6", _ipv6)):
        for line in (PROC / "net" / table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN or int(fields[9]) not in owners:
                continue
            address, port = fields[1].split(":")
            pid = owners[int(fields[9])]
            found.append(Listener(parse(address), int(port, 16), pid, _command(pid)))
    return found


def listening_ports() -> set[int]:
    """Ports anything on this machine listens on."""
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in (PROC / "net" / table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


def http_accepts(port: int, headers: dict[str, str] | None = None) -> str | None:
    """The first path a plain HTTP GET to 127.0.0.1:port gets a 2xx or 3xx for, if any."""
    for path in HTTP_PATHS:
        try:
            status = httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=5,
                               follow_redirects=False).status_code
        except (httpx.HTTPError, OSError):
            return None  # not HTTP
        if status < 400:
            return f"GET {path} -> {status}"
    return None


def grpc_answers(port: int, metadata: tuple = ()) -> dict[str, str]:
    """Status code name of each Ray gRPC method this port serves, called through 127.0.0.1."""
    import grpc

    answers = {}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        for method in RAY_GRPC_METHODS:
            call = channel.unary_unary(method, request_serializer=lambda r: r,
                                       response_deserializer=lambda r: r)
            try:
                call(b"", timeout=5, metadata=metadata)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            if code not in NOT_THERE:
                answers[method] = code
    return answers


def grpc_accepts(port: int) -> dict[str, str]:
    """The Ray gRPC calls without a token that this port did not refuse."""
    return {method: code for method, code in grpc_answers(port).items() if code not in REFUSED}


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # after "pid (comm) "


def _ppid(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else 0


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _command(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        return "?"


def _socket_owners(pids: set[int]) -> dict[int, int]:
    """socket inode -> pid, for the sockets the processes hold."""
    owners = {}
    for pid in pids:
        try:
            fds = list((PROC / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[int(target[8:-1])] = pid
    return owners


def _ipv4(hex_address: str) -> str:
    return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(hex_address, 16)))


def _ipv6(hex_address: str) -> str:
    words = [int(hex_address[i:i + 8], 16) for i in range(0, 32, 8)]
    return socket.inet_ntop(socket.AF_INET6, struct.pack("<4I", *words))
