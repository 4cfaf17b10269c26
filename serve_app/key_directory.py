"""Which tenant a presented API key belongs to, kept current with the tenants file.

The directory maps the SHA-256 of every accepted key to its tenant: the tenants file's digests
to their tenants, and the plain keys (ingress.api_keys) to the tenant `default` (the file's
own `default` when it lists one, else an unlimited one). A key is looked up by its digest in a
dict. That lookup is not constant-time, and need not be: its timing can tell at most how the
presented key's digest relates to the stored ones, and choosing a key whose digest has a given
prefix, or finding a key from its digest, is as hard as SHA-256 is to invert.

Each ingress replica re-reads the file when its device, inode, size or modification time
changes, looking at most every `reload_interval_s` (on a request; the clock is injectable), so
a new or revoked key takes effect within that interval without a restart. A file that becomes
unreadable or invalid leaves the last good tenants in force and is logged as an error, once per
change of the file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from serve_app.tenants import (
    DEFAULT_TENANT,
    Tenant,
    TenantsFile,
    TenantsFileError,
    key_digest,
    read_tenants,
)

# The plain keys' tenant when the tenants file lists no `default`: no limit, and it sees the
# diagnostics headers, as every key did before there were tenants.
PLAIN_KEYS_TENANT = Tenant(name=DEFAULT_TENANT, diagnostics=True)
FileSignature = tuple[int, int, int, int] | None  # (device, inode, size, mtime_ns); None: gone
logger = logging.getLogger("ray.serve")


class KeyDirectory:
    def __init__(self, plain_keys: Iterable[str], tenants_file: Path | None = None,
                 reload_interval_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Reads the tenants file now: TenantsFileError if it cannot be read or is invalid."""
        self.plain_digests = frozenset(key_digest(key) for key in plain_keys)
        self.path, self.reload_interval_s, self.clock = tenants_file, reload_interval_s, clock
        self.next_check = clock() + reload_interval_s
        self.signature: FileSignature = None
        self.tenants: TenantsFile | None = None
        if tenants_file is not None:
            self.signature = file_signature(tenants_file)
            self.tenants = read_tenants(tenants_file)
        self.table = key_table(self.plain_digests, self.tenants)
        # Decided once: an API that started with keys never turns anonymous, even when every
        # key has been revoked since (then it answers 401 to all).
        self.anonymous = not self.table

    def lookup(self, key: str) -> Tenant | None:
        """The tenant whose key this is, or None."""
        self.refresh()
        return self.table.get(key_digest(key))

    def refresh(self) -> None:
        """Re-reads the tenants file if it changed, at most once per interval."""
        if self.path is None or self.clock() < self.next_check:
            return
        self.next_check = self.clock() + self.reload_interval_s
        signature = file_signature(self.path)
        if signature == self.signature:
            return
        self.signature = signature
        try:
            tenants = read_tenants(self.path)
        except TenantsFileError as exc:
            logger.error("the tenants file changed and cannot be used; the tenants read before "
                         "stay in force: %s", exc)
            return
        self.tenants, self.table = tenants, key_table(self.plain_digests, tenants)
        logger.warning("the tenants file %s was read again: %d tenants, %d keys", self.path,
                       len(tenants.tenants), tenants.key_count())


def key_table(plain_digests: Iterable[str], tenants: TenantsFile | None) -> dict[str, Tenant]:
    """Each accepted key's digest -> its tenant. A digest both in the file and among the plain
    keys belongs to the file's tenant."""
    listed = {tenant.name: tenant for tenant in tenants.tenants} if tenants else {}
    plain_tenant = listed.get(DEFAULT_TENANT, PLAIN_KEYS_TENANT)
    table = dict.fromkeys(plain_digests, plain_tenant)
    table.update({digest: tenant for tenant in listed.values() for digest in tenant.key_sha256})
    return table


def file_signature(path: Path) -> FileSignature:
    """What changes when the file is written or replaced (a rename, a Kubernetes volume's
    symlink swap); None when it cannot be seen."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns
