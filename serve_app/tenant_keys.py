"""Keys of the tenants file (serve_app/tenants.py): make one, revoke one, list them.

    python -m serve_app.tenant_keys new --tenant team-a --file tenants.yaml
    python -m serve_app.tenant_keys revoke --sha256 1f2e3d4c --file tenants.yaml
    python -m serve_app.tenant_keys list --file tenants.yaml

`new` prints a new random key once, on stdout, and writes only its SHA-256 into the file,
adding the tenant (with no limits) if the file has none of that name and the file if there is
none. The file is replaced whole (a new file, mode 0600, renamed over the old one), so a
reader never sees half of it, and every ingress replica reads it again within
`ingress.tenants.reload_interval_s`. `revoke` removes the digest that starts with the given
hex (at least 8 digits, one match). The file is written back as YAML without its comments.
One writer at a time: two commands run at once may lose one's change.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from serve_app.tenants import (
    TenantsFile,
    TenantsFileError,
    key_digest,
    parse_tenants,
)

KEY_BYTES = 32
MIN_PREFIX = 8
FILE_MODE = 0o600


def new_key(path: Path, tenant: str) -> str:
    """A new key for `tenant`, its digest written into the file; the key itself is returned
    and kept nowhere."""
    raw = read_raw(path)
    key = secrets.token_urlsafe(KEY_BYTES)
    entry = next((t for t in raw["tenants"] if t.get("name") == tenant), None)
    if entry is None:
        entry = {"name": tenant, "key_sha256": []}
        raw["tenants"].append(entry)
    entry["key_sha256"] = [*entry.get("key_sha256", []), key_digest(key)]
    write_raw(path, raw)
    return key


def revoke(path: Path, prefix: str) -> tuple[str, str]:
    """Removes the one digest that starts with `prefix`; returns (tenant, digest)."""
    prefix = prefix.lower()
    if len(prefix) < MIN_PREFIX:
        raise TenantsFileError(f"give at least {MIN_PREFIX} hex digits of the digest")
    raw = read_raw(path)
    found = [(entry, digest) for entry in raw["tenants"]
             for digest in entry.get("key_sha256", []) if digest.lower().startswith(prefix)]
    if len(found) != 1:
        raise TenantsFileError(f"{path}: {len(found)} key digests start with {prefix}; "
                               f"give one that names exactly one")
    entry, digest = found[0]
    entry["key_sha256"] = [d for d in entry["key_sha256"] if d != digest]
    write_raw(path, raw)
    return entry["name"], digest


def read_raw(path: Path) -> dict[str, Any]:
    """The file as parsed YAML, checked to be a valid tenants file; an empty one if absent."""
    if not path.exists():
        return {"tenants": []}
    text = path.read_text()
    parse_tenants(text, str(path))
    return yaml.safe_load(text)


def write_raw(path: Path, raw: dict[str, Any]) -> None:
    """Checks the new content, then replaces the file with it: mode 0600, atomically."""
    text = yaml.safe_dump(raw, sort_keys=False, default_flow_style=False)
    parse_tenants(text, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def listing(tenants: TenantsFile) -> list[str]:
    return [f"{tenant.name}: {', '.join(d[:12] for d in tenant.key_sha256) or 'no keys'}"
            for tenant in tenants.tenants]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.tenant_keys",
                                     description="keys of the tenants file")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="print a new key once; write its SHA-256")
    new.add_argument("--tenant", required=True)
    revoked = commands.add_parser("revoke", help="remove a key's SHA-256")
    revoked.add_argument("--sha256", required=True, help="the digest, or its first 8+ digits")
    commands.add_parser("list", help="each tenant with its digests' first digits")
    for command in commands.choices.values():
        command.add_argument("--file", required=True, type=Path, help="the tenants file")
    args = parser.parse_args(argv)
    try:
        if args.command == "new":
            key = new_key(args.file, args.tenant)
            print(key)
            print(f"{args.tenant}: a new key, sha256 {key_digest(key)[:12]}..., written to "
                  f"{args.file}; the key is shown only this once", file=sys.stderr)
        elif args.command == "revoke":
            tenant, digest = revoke(args.file, args.sha256)
            print(f"{tenant}: the key {digest[:12]}... is revoked in {args.file}",
                  file=sys.stderr)
        else:
            print("\n".join(listing(parse_tenants(args.file.read_text(), str(args.file)))))
    except (TenantsFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
