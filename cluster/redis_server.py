"""A real redis-server (Debian's, installed by `make system-deps`) for the tests and the cache
bench suite: on a free loopback port, its files in a temp dir, stopped by its own PID, never by
name."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


class RedisServer:
    """redis-server on a free loopback port, its files in a temp dir, stopped by its PID; with
    a `password`, clients must AUTH (it is written to a 0600 config file, never to the command
    line, which every local user can read)."""

    def __init__(self, folder: Path, password: str | None = None) -> None:
        self.folder, self.process, self.password = folder, None, password
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", *self._config_file(),
             "--port", str(self.port),
             "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", "",
             "--appendonly", "no", "--protected-mode", "yes"],
            stdout=(self.folder / "redis.log").open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start: {(self.folder / 'redis.log').read_text()}")

    def cache_settings(self) -> dict[str, Any]:
        """The app's `cache:` fields that use this server: its URL, the secret that signs the
        cache's entries (random, made once, in a 0600 file beside the server's) and, with a
        password, the password's file."""
        secret = self.folder / "cache-secret"
        if not secret.exists():
            _write_private(secret, secrets.token_hex(32))
        settings: dict[str, Any] = {"redis_url": self.url, "hmac_secret": {"file": str(secret)}}
        if self.password is not None:
            settings["redis_password"] = {"file": str(self.password_file())}
        return settings

    def password_file(self) -> Path:
        """The password in a file only this user may read, for clients that take a file."""
        if self.password is None:
            raise ValueError("this redis-server has no password")
        path = self.folder / "redis-password"
        _write_private(path, self.password)
        return path

    def _config_file(self) -> list[str]:
        if self.password is None:
            return []
        path = self.folder / "redis.conf"
        _write_private(path, f"requirepass {self.password}\n")
        return [str(path)]

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def _write_private(path: Path, text: str) -> None:
    """Writes `text` to a file only this user may read (0600 from its creation)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
