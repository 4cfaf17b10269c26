"""API keys: where they come from, how a request proves it has one, and when none is allowed.

Keys come from the environment variable and/or the file that `ingress.api_keys` names, never
from the profile itself. A request carries one as `Authorization: Bearer KEY` (what the OpenAI
clients send with `api_key=`). With no key configured the API is anonymous, which is allowed
only while Serve's HTTP binds a loopback address, or when the profile says
`allow_anonymous: true`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path

from deployments.core.config import ApiKeys, ConfigError
from deployments.core.errors import ServeError
from serve_app.http_errors import HttpError

BEARER = "bearer"
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}
LOOPBACK_NAMES = ("localhost",)


def load_api_keys(settings: ApiKeys) -> frozenset[str]:
    """Comma-separated keys from the `env` variable plus one key per line of `file`.

    Blank lines and `#` comments in the file are skipped. A configured file that cannot be read
    is a start-up error: serving anonymously because a path was mistyped would be worse.
    """
    keys: set[str] = set()
    if settings.env:
        keys.update(_split(os.environ.get(settings.env, "").split(",")))
    if settings.file:
        keys.update(_split(_read_key_file(Path(settings.file)).splitlines()))
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


def authenticate(authorization_header: str | None, keys: frozenset[str]) -> None:
    """Accepts `Bearer KEY` for any configured key; raises a 401 otherwise (no-op: no keys).

    Every key is compared, in constant time, whatever the outcome of the others, so the time
    taken tells nothing about which key (or how much of one) matched.
    """
    if not keys:
        return
    scheme, _, presented = (authorization_header or "").strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != BEARER or not presented:
        raise _unauthorized("missing API key: send the header 'Authorization: Bearer KEY'")
    candidate = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode())
    if not matched:
        raise _unauthorized("invalid API key")


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


def check_exposure(http_host: str | None, keys: frozenset[str], allow_anonymous: bool) -> None:
    """Refuses an anonymous API on anything but loopback, unless the config allows it out loud."""
    if keys or allow_anonymous or is_loopback(http_host or ""):
        return
    raise ConfigError(
        f"refusing to serve without API keys on {http_host or 'all interfaces'}: set "
        f"MMSERVE_API_KEYS (or ingress.api_keys), bind http_options.host to 127.0.0.1, or set "
        f"ingress.allow_anonymous: true")


def serve_http_host() -> str | None:
    """The host Serve's HTTP binds, as the Serve controller holds it (from inside a replica).

    Serve's own replicas read it the same way (`get_http_config` on the controller actor).
    """
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    return ray.get(controller.get_http_config.remote()).host
