"""What a Redis URL in the config may say: where Redis is (redis://, rediss:// or unix://), never
how to log in. redis-py takes a user and password from the URL's user info and also from its
query (`?password=`, `?username=`), so a URL with either would put the secret wherever the URL
goes: a profile, a log line, an environment shared by every Ray worker. The password comes from
`cache.redis_password` (an environment variable or a file) instead."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

SCHEMES = ("redis", "rediss", "unix")
CREDENTIAL_QUERY_KEYS = ("password", "username")
DEFAULT_HOST = "localhost"  # redis-py's, for a URL that names no host


def check_redis_url(url: str) -> None:
    """Raises ValueError, in one sentence that does not repeat the URL, for a URL of another
    scheme or one that carries a user or a password."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in SCHEMES or not rest:
        raise ValueError("must start with redis://, rediss:// or unix://")
    parts = urlsplit(url)
    query_keys = {key.lower() for key in parse_qs(parts.query, keep_blank_values=True)}
    if "@" in parts.netloc or query_keys & set(CREDENTIAL_QUERY_KEYS):
        raise ValueError(
            "carries credentials (a user or password before the host, or ?password= or "
            "?username= in its query): give the password as cache.redis_password ({env: NAME} "
            "or {file: PATH}) and the user as cache.redis_username, never in the URL")


def redis_host(url: str) -> str | None:
    """The host a redis:// or rediss:// URL connects to; None for a unix socket."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "unix":
        return None
    return parts.hostname or DEFAULT_HOST
