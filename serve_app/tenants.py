"""The tenants file: who may call the API, with which keys, held to which limits.

    tenants:
      - name: team-a
        key_sha256: [<hex SHA-256 of a key>, ...]   # never keys in clear
        requests_per_minute: 600
        tokens_per_minute: 200000        # prompt + completion
        images_per_minute: 600
        audio_seconds_per_minute: 1800
        max_concurrent: 16
        priority: interactive            # or batch
        weight: 1                        # its fair share among the tenants of its priority
        diagnostics: false               # may see X-Cache and Server-Timing
        admin: false                     # may read GET /v1/usage
        cache_namespace: own             # or shared: the response cache's entries

Every limit is optional (absent: unlimited). The model is strict: an unknown field, a value of
the wrong type (a quoted number), a digest that is not 64 hex digits, or one digest under two
tenants (or twice under one) is an error naming it. `python -m serve_app.tenant_keys` makes
keys and writes their digests here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from deployments.core.call_protocol import Priority

TenantName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
KeyDigest = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
Positive = Annotated[int, Field(ge=1)]
# The per-minute limits, by the name their bucket and their x-ratelimit-* headers carry.
PER_MINUTE_LIMITS = {"requests": "requests_per_minute", "tokens": "tokens_per_minute",
                     "images": "images_per_minute", "audio-seconds": "audio_seconds_per_minute"}
DEFAULT_TENANT = "default"


class TenantsFileError(ValueError):
    """The tenants file cannot be read or is not a valid one; the message says where."""


class Tenant(BaseModel):
    """One tenant: its keys (as SHA-256 digests), its limits and what it may see."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: TenantName
    key_sha256: tuple[KeyDigest, ...] = ()
    requests_per_minute: Positive | None = None
    tokens_per_minute: Positive | None = None
    images_per_minute: Positive | None = None
    audio_seconds_per_minute: Positive | None = None
    max_concurrent: Positive | None = None
    priority: Priority = "interactive"
    weight: float = Field(1.0, ge=0.01, le=100.0)
    diagnostics: bool = False
    admin: bool = False
    # own: the response cache answers this tenant only from what it sent itself; shared: from
    # one namespace common to every tenant that says shared (serve_app/cache.py).
    cache_namespace: Literal["own", "shared"] = "own"

    @field_validator("key_sha256", mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("key_sha256")
    @classmethod
    def _lower_case(cls, digests: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(digest.lower() for digest in digests)

    def per_minute(self) -> dict[str, int]:
        """The per-minute limits this tenant has: bucket name -> limit."""
        return {name: getattr(self, field) for name, field in PER_MINUTE_LIMITS.items()
                if getattr(self, field) is not None}


class TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    tenants: list[Tenant]

    @model_validator(mode="after")
    def _each_name_and_digest_once(self) -> TenantsFile:
        names: set[str] = set()
        owners: dict[str, str] = {}
        for tenant in self.tenants:
            if tenant.name in names:
                raise ValueError(f"the tenant {tenant.name!r} is listed twice")
            names.add(tenant.name)
            for digest in tenant.key_sha256:
                if digest in owners:
                    raise ValueError(f"the key digest {digest[:12]}... is listed under "
                                     f"{owners[digest]!r} and {tenant.name!r}: a key belongs "
                                     f"to one tenant, once")
                owners[digest] = tenant.name
        return self

    def key_count(self) -> int:
        return sum(len(tenant.key_sha256) for tenant in self.tenants)


def key_digest(key: str) -> str:
    """The hex SHA-256 of a key, as the tenants file holds it. A lone surrogate (no header
    carries one, but a str may) is hashed too, never an error: it matches no key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def parse_tenants(text: str, source: str) -> TenantsFile:
    """The tenants file's text as a TenantsFile; TenantsFileError naming each problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TenantsFileError(f"{source}: not valid YAML: {exc}") from None
    try:
        return TenantsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(err['loc'], raw)}: {err['msg']}"
                             for err in exc.errors(include_url=False))
        raise TenantsFileError(f"{source}: {problems}") from None


def read_tenants(path: Path) -> TenantsFile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TenantsFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    return parse_tenants(text, str(path))


def _where(location: tuple, raw: Any) -> str:
    """An error's place, with the tenant's name in place of its index where it has one."""
    parts = [str(part) for part in location]
    if len(location) >= 2 and location[0] == "tenants" and isinstance(location[1], int):
        try:
            parts[1] = repr(raw["tenants"][location[1]]["name"])
        except (KeyError, IndexError, TypeError):
            pass
    return ".".join(parts) or "the file"
