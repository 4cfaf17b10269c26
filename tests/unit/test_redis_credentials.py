"""The cache's Redis credentials: never in its URL (user info or query), the password from an
environment variable or a file, and AUTH required beyond loopback; then a real redis-server with
requirepass, reached with the password and refused without it."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from cluster.redis_server import RedisServer
from deployments.core.config import CacheSettings, ConfigError, load_config
from deployments.core.redis_url import check_redis_url, redis_host
from serve_app.cache import make_store
from serve_app.cache_store import MemoryStore, RedisStore, StoreDown
from serve_app.redis_connection import RedisTarget, redis_target, redis_url

WITH_CREDENTIALS = [
    "redis://:pw@h:6379/0",
    "redis://u:pw@h/0",
    "redis://u@h/0",
    "rediss://u:p%40ss@h:6380",
    "REDIS://:pw@h/0",
    "unix://:pw@/run/redis.sock",
    "redis://h/0?password=x",
    "redis://h:6379?db=1&password=x",
    "redis://h?username=u",
    "redis://h?Password=x",
    "redis://h?pass%77ord=x",
    "redis://h?password=",
]


def cache(**settings) -> CacheSettings:
    return load_config({"cache": settings}).cache


@pytest.mark.parametrize("url", WITH_CREDENTIALS)
def test_a_url_with_credentials_is_refused_without_repeating_them(url):
    with pytest.raises(ValueError, match="carries credentials") as refused:
        check_redis_url(url)
    assert url not in str(refused.value)
    with pytest.raises(ConfigError, match="cache.redis_url.*carries credentials"):
        load_config({"cache": {"redis_url": url}})


@pytest.mark.parametrize("url", ["http://h:6379", "redis:h", "h:6379", "redis://"])
def test_a_url_of_another_scheme_is_refused(url):
    with pytest.raises(ValueError, match="must start with redis://"):
        check_redis_url(url)


@pytest.mark.parametrize("url, host", [
    ("redis://127.0.0.1:6379/0", "127.0.0.1"), ("rediss://cache.internal:6380", "cache.internal"),
    ("redis://[::1]:6379", "::1"), ("redis:///0", "localhost"), ("redis://h/0?db=2", "h"),
    ("unix:///run/redis.sock?db=1", None)])
def test_a_url_without_credentials_is_accepted(url, host):
    check_redis_url(url)
    assert redis_host(url) == host


def test_a_url_from_the_environment_is_checked_when_the_ingress_starts(monkeypatch):
    settings = cache(redis_url={"env": "TEST_CACHE_REDIS_URL"})
    monkeypatch.delenv("TEST_CACHE_REDIS_URL", raising=False)
    with pytest.raises(ConfigError, match="TEST_CACHE_REDIS_URL is not set"):
        redis_url(settings.redis_url)
    monkeypatch.setenv("TEST_CACHE_REDIS_URL", "redis://:secret@127.0.0.1:6380/0")
    with pytest.raises(ConfigError, match="the URL in TEST_CACHE_REDIS_URL carries") as refused:
        redis_url(settings.redis_url)
    assert "secret" not in str(refused.value)
    monkeypatch.setenv("TEST_CACHE_REDIS_URL", "redis://127.0.0.1:6380/0")
    assert redis_url(settings.redis_url) == "redis://127.0.0.1:6380/0"


def test_the_password_comes_from_an_environment_variable_or_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_REDIS_PASSWORD", "from-env")
    from_env = redis_target(cache(redis_url="redis://10.0.0.5:6379/0", redis_username="app",
                                  redis_password={"env": "TEST_REDIS_PASSWORD"}))
    assert from_env == RedisTarget("redis://10.0.0.5:6379/0", "app", "from-env")
    assert "from-env" not in repr(from_env)
    secret = tmp_path / "redis-password"
    secret.write_text("from-file\n")
    from_file = redis_target(cache(redis_url="redis://10.0.0.5:6379/0",
                                   redis_password={"file": str(secret)}))
    assert from_file.password == "from-file"


@pytest.mark.parametrize("source", [{}, {"env": "A", "file": "/b"}])
def test_a_password_source_names_exactly_one_place(source):
    with pytest.raises(ConfigError, match="cache.redis_password.*exactly one of env or file"):
        cache(redis_password=source)


def test_a_password_source_that_yields_nothing_refuses_to_start(monkeypatch, tmp_path):
    monkeypatch.delenv("TEST_REDIS_PASSWORD", raising=False)
    url = "redis://127.0.0.1:6379/0"
    with pytest.raises(ConfigError, match="cache.redis_password: the environment variable "
                                          "TEST_REDIS_PASSWORD is empty or not set"):
        redis_target(cache(redis_url=url, redis_password={"env": "TEST_REDIS_PASSWORD"}))
    with pytest.raises(ConfigError, match="cache.redis_password: cannot read"):
        redis_target(cache(redis_url=url, redis_password={"file": str(tmp_path / "absent")}))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        redis_target(cache(redis_url=url, redis_password={"file": str(tmp_path / "empty")}))


@pytest.mark.parametrize("url", ["redis://10.0.0.5:6379/0", "rediss://cache.example.com:6380",
                                 "redis://0.0.0.0:6379", "redis://[2001:db8::1]:6379"])
def test_a_redis_beyond_loopback_without_a_password_refuses_to_start(url):
    with pytest.raises(ConfigError, match=r"refusing a Redis beyond loopback .* without AUTH"):
        make_store(cache(enabled=True, redis_url=url))


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://localhost:6379",
                                 "redis://[::1]:6379", "unix:///run/redis.sock"])
def test_a_loopback_redis_may_go_without_a_password(url):
    assert redis_target(cache(redis_url=url)) == RedisTarget(url)


def test_no_redis_is_the_in_process_store():
    assert redis_target(cache()) is None
    assert isinstance(make_store(cache(enabled=True)), MemoryStore)


# -- a real Redis with requirepass -------------------------------------------------------------

@pytest.fixture
def redis_with_password(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: run `make system-deps`")
    server = RedisServer(tmp_path, password="s3cret-pass").start()
    yield server
    server.kill()


def test_the_store_logs_in_with_the_password_from_its_file(redis_with_password, tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret-pass\n")
    store = make_store(cache(enabled=True, redis_url=redis_with_password.url,
                             redis_timeout_s=1.0, redis_password={"file": str(secret)}))

    async def scenario() -> list[bytes | None]:
        await store.set_many([("k", b"v")], ttl_s=10)
        values = await store.get_many(["k"])
        await store.close()
        return values

    assert asyncio.run(scenario()) == [b"v"]


def test_a_redis_that_wants_auth_refuses_a_store_without_it(redis_with_password):
    store = RedisStore(redis_with_password.url, timeout_s=1.0, retry_s=0.0)

    async def scenario() -> None:
        try:
            await store.get_many(["k"])
        finally:
            await store.close()

    with pytest.raises(StoreDown, match="Authentication"):
        asyncio.run(scenario())
