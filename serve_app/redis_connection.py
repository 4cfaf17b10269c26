"""The cache's Redis as the ingress connects to it: the URL (from the config, or from the
environment variable it names), checked to carry no credentials, and the AUTH password, read
from its environment variable or file. A Redis beyond loopback without a password is refused:
anyone who can write to it could plant answers for every client."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployments.core.config import CacheSettings, ConfigError, FromEnv, SecretSource
from deployments.core.redis_url import check_redis_url, redis_host
from serve_app.auth import is_loopback


@dataclass(frozen=True)
class RedisTarget:
    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def redis_target(settings: CacheSettings) -> RedisTarget | None:
    """Where the cache's Redis is and how to log in to it; None: no Redis configured."""
    url = redis_url(settings.redis_url)
    if url is None:
        return None
    password = read_secret(settings.redis_password, "cache.redis_password")
    host = redis_host(url)
    if password is None and host is not None and not is_loopback(host):
        raise ConfigError(
            f"cache.redis_url: refusing a Redis beyond loopback ({host}) without AUTH: set "
            f"requirepass on the server and cache.redis_password ({{env: NAME}} or "
            f"{{file: PATH}}) here")
    return RedisTarget(url, settings.redis_username, password)


def fail_fast_client(url: str, timeout_s: float, username: str | None = None,
                     password: str | None = None) -> Any:
    """An asyncio Redis client that gives up after `timeout_s` and never retries: a request
    must not wait on a Redis that is down (its caller falls back, and tries again later)."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.asyncio.Redis.from_url(
        url, username=username, password=password, socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
        health_check_interval=0)


def redis_url(setting: str | FromEnv | None) -> str | None:
    """The URL itself, read from its environment variable when the config names one, and
    checked as one written in the config is."""
    if not isinstance(setting, FromEnv):
        return setting
    url = os.environ.get(setting.env)
    if not url:
        raise ConfigError(f"cache.redis_url: the environment variable {setting.env} is not set "
                          "on the ingress's node")
    try:
        check_redis_url(url)
    except ValueError as error:
        raise ConfigError(f"cache.redis_url: the URL in {setting.env} {error}") from None
    return url


def read_secret(source: SecretSource | None, name: str) -> str | None:
    """The secret `source` names, read now; a named source that yields nothing is an error."""
    if source is None:
        return None
    if source.env is not None:
        secret = os.environ.get(source.env, "")
        where = f"the environment variable {source.env}"
    else:
        where = f"the file {source.file}"
        try:
            secret = Path(source.file).expanduser().read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read {source.file}: "
                              f"{exc.strerror or exc}") from None
    if not secret:
        raise ConfigError(f"{name}: {where} is empty or not set on the ingress's node")
    return secret
