"""A tenants file made for one bench run: a key per tenant made with serve_app.tenant_keys
(only digests in the file, mode 0600), in a private folder the caller owns (a temporary one,
mode 0700); the keys themselves kept in this process's memory only and registered for
redaction (bench/redact.py). Limits are changed by rewriting the file whole, as
`tenant_keys` does; every ingress replica reads it again within its reload interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.redact import register_secret
from serve_app.tenant_keys import new_key, read_raw, write_raw

FILE_NAME = "tenants.yaml"


class Keyring:
    def __init__(self, folder: Path, tenants: Mapping[str, Mapping[str, Any]]) -> None:
        """`tenants`: name -> its fields in the tenants file beside its key (limits,
        priority, admin)."""
        self.path = folder / FILE_NAME
        self.keys: dict[str, str] = {}
        for name in tenants:
            self.keys[name] = new_key(self.path, name)
            register_secret(self.keys[name])
        self.update(tenants)

    def key(self, tenant: str) -> str:
        return self.keys[tenant]

    def update(self, fields: Mapping[str, Mapping[str, Any]]) -> None:
        """Sets these fields of these tenants (None removes one) and writes the file whole."""
        raw = read_raw(self.path)
        for entry in raw["tenants"]:
            for name, value in fields.get(entry["name"], {}).items():
                if value is None:
                    entry.pop(name, None)
                else:
                    entry[name] = value
        write_raw(self.path, raw)

    def fields(self, tenant: str) -> dict[str, Any]:
        """A tenant's entry as the file holds it now, without its key digests."""
        entry = next(e for e in read_raw(self.path)["tenants"] if e["name"] == tenant)
        return {name: value for name, value in entry.items() if name != "key_sha256"}
