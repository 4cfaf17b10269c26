"""API keys: where they come from, how a request proves it has one, and when none is allowed.

Keys come from the environment variable and/or the file that `ingress.api_keys` names (plain
keys, the tenant `default`), and from the tenants file (`ingress.tenants`, serve_app/tenants.py,
as SHA-256 digests), never from the profile itself. A request carries one as
`Authorization: Bearer KEY` (what the OpenAI clients send with `api_key=`) and is served for
the key's tenant (serve_app/key_directory.py). A source that is configured but yields no key
stops the start. With no key source at all the API is anonymous, which is allowed only while
Serve's HTTP binds a loopback address, or when the profile says `allow_anonymous: true`.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from deployments.core.config import ApiKeys, ConfigError, IngressSettings, TenantsSettings
from deployments.core.errors import ServeError
from serve_app.http_errors import HttpError
from serve_app.key_directory import KeyDirectory
from serve_app.tenants import Tenant, TenantsFileError

BEARER = "bearer"
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}
LOOPBACK_NAMES = ("localhost",)
ANONYMOUS_WARNING = ("THE API IS ANONYMOUS: no API key and no tenants file is configured, so "
                     "every request is served without a key and without tenant limits")


def load_key_directory(ingress: IngressSettings,
                       clock: Callable[[], float] = time.monotonic) -> KeyDirectory:
    """The plain keys and the tenants file, read now. A configured source that cannot be read,
    or that holds no key, is a start-up error: serving anonymously because a path was mistyped
    or a secret came out empty would be worse."""
    path = tenants_file(ingress.tenants)
    try:
        directory = KeyDirectory(load_api_keys(ingress.api_keys), path,
                                 ingress.tenants.reload_interval_s, clock)
    except TenantsFileError as exc:
        raise ConfigError(f"ingress.tenants: {exc}") from None
    if directory.tenants is not None and directory.tenants.key_count() == 0:
        raise ConfigError(f"ingress.tenants: the tenants file {path} holds no key digest; add "
                          f"one with `python -m serve_app.tenant_keys new --tenant NAME --file "
                          f"{path}`")
    return directory


def tenants_file(settings: TenantsSettings) -> Path | None:
    """The tenants file's path: `file`, else the variable `file_env` names (if it is set)."""
    if settings.file:
        return Path(settings.file).expanduser()
    if settings.file_env and settings.file_env in os.environ:
        named = os.environ[settings.file_env].strip()
        if not named:
            raise ConfigError(f"ingress.tenants.file_env: {settings.file_env} is set but empty; "
                              f"name the tenants file in it, or unset it")
        return Path(named).expanduser()
    return None


def load_api_keys(settings: ApiKeys) -> frozenset[str]:
    """Comma-separated keys from the `env` variable plus one key per line of `file`.

    Blank lines and `#` comments in the file are skipped. A configured file that cannot be read
    or holds no key, or a variable that is set but holds no key, is a start-up error.
    """
    keys: set[str] = set()
    if settings.env and settings.env in os.environ:
        from_env = _split(os.environ[settings.env].split(","))
        if not from_env:
            raise ConfigError(f"ingress.api_keys.env: {settings.env} is set but holds no key; "
                              f"put keys in it, or unset it to serve without keys")
        keys.update(from_env)
    if settings.file:
        from_file = _split(_read_key_file(Path(settings.file)).splitlines())
        if not from_file:
            raise ConfigError(f"ingress.api_keys.file: {settings.file} holds no key; put one "
                              f"key per line in it, or stop naming it")
        keys.update(from_file)
    return frozenset(keys)


def _split(parts: list[str]) -> set[str]:
    return {part.strip() for part in parts
            if part.strip() and not part.strip().startswith("#")}


def _read_key_file(path: Path) -> str:
    try:
        return path.expanduser().read_text()
    except OSError as exc:
        raise ConfigError(f"ingress.api_keys.file: cannot read {path}: "
                          f"{exc.strerror or exc}") from None


def authenticate_headers(values: Sequence[str], directory: KeyDirectory) -> Tenant | None:
    """authenticate() for a request that sent `values` as its Authorization headers: one at
    most (see one_authorization). An anonymous API reads none of them."""
    if directory.anonymous:
        return None
    return authenticate(one_authorization(values), directory)


def one_authorization(values: Sequence[str]) -> str | None:
    """The Authorization header among the request's `values` for it; a 401 when it came more
    than once (which one a proxy in front checked is unknowable)."""
    if len(values) > 1:
        raise _unauthorized("send one Authorization header, not several")
    return values[0] if values else None


def authenticate(authorization_header: str | None, directory: KeyDirectory) -> Tenant | None:
    """The tenant of the `Bearer KEY` presented; raises a 401 for a missing or unknown key.
    None when the API is anonymous (no key configured at start)."""
    if directory.anonymous:
        return None
    scheme, _, presented = (authorization_header or "").strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != BEARER or not presented:
        raise _unauthorized("missing API key: send the header 'Authorization: Bearer KEY'")
    tenant = directory.lookup(presented)
    if tenant is None:
        raise _unauthorized("invalid API key")
    return tenant


def _unauthorized(message: str) -> ServeError:
    return HttpError(401, message, headers=UNAUTHORIZED_HEADERS)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (and ::ffff:127.x), or `localhost`: reachable from this machine only."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # any other name may resolve to a public address
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def check_exposure(http_host: str | None, has_keys: bool, allow_anonymous: bool) -> None:
    """Refuses an anonymous API on anything but loopback, unless the config allows it out loud."""
    if has_keys or allow_anonymous or is_loopback(http_host or ""):
        return
    raise ConfigError(
        f"refusing to serve without API keys on {http_host or 'all interfaces'}: set "
        f"MMSERVE_API_KEYS (or ingress.api_keys) or MMSERVE_TENANTS_FILE (or "
        f"ingress.tenants.file), bind http_options.host to 127.0.0.1, or set "
        f"ingress.allow_anonymous: true")


def serve_http_host() -> str | None:
    """The host Serve's HTTP binds, as the Serve controller holds it (from inside a replica).

    Serve's own replicas read it the same way (`get_http_config` on the controller actor).
    """
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    return ray.get(controller.get_http_config.remote()).host
