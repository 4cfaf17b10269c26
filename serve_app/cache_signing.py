"""The response cache's entries, signed: what is stored under a key is
HMAC-SHA256(secret, key + value) followed by the value, and every read checks it. An entry that
no ingress holding the secret wrote under that very key (one planted in Redis, one copied from
another key or another tenant's namespace, one cut short) is not served: the cache treats it
as a miss.

The secret is `cache.hmac_secret` ({env: NAME} or {file: PATH}). With the cache in Redis it is
required: every ingress replica must sign with the same one, and whoever else can write to
that Redis is what it guards against. In process, without one, each ingress replica makes a
random one when it starts; its entries live and die with it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from deployments.core.config import CacheSettings, ConfigError
from serve_app.redis_connection import read_secret

TAG_BYTES = hashlib.sha256().digest_size
MIN_SECRET_CHARS = 32
GENERATED_SECRET_BYTES = 32


class EntrySigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, key: str, value: bytes) -> bytes:
        """The entry to store under `key`: its tag, then the value."""
        return self._tag(key, value) + value

    def verify(self, key: str, entry: bytes) -> bytes | None:
        """The value of an entry this secret signed under `key`; None for any other."""
        if len(entry) < TAG_BYTES:
            return None
        tag, value = entry[:TAG_BYTES], entry[TAG_BYTES:]
        return value if hmac.compare_digest(tag, self._tag(key, value)) else None

    def _tag(self, key: str, value: bytes) -> bytes:
        encoded = key.encode()
        mac = hmac.new(self._secret, digestmod=hashlib.sha256)
        mac.update(len(encoded).to_bytes(4, "big"))  # where the key ends and the value starts
        mac.update(encoded)
        mac.update(value)
        return mac.digest()


def entry_signer(settings: CacheSettings, in_redis: bool) -> EntrySigner:
    """The signer of the cache's entries, with the configured secret; a random one in process
    when none is configured. A cache in Redis without a secret does not start."""
    secret = read_secret(settings.hmac_secret, "cache.hmac_secret")
    if secret is None:
        if in_redis:
            raise ConfigError(
                "cache.hmac_secret: a response cache in Redis needs a secret, the same on "
                "every ingress replica, to sign its entries with: set it to {env: NAME} or "
                f"{{file: PATH}} holding at least {MIN_SECRET_CHARS} random characters "
                "(openssl rand -hex 32)")
        return EntrySigner(secrets.token_bytes(GENERATED_SECRET_BYTES))
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(f"cache.hmac_secret: the secret has {len(secret)} characters; give "
                          f"at least {MIN_SECRET_CHARS} random ones (openssl rand -hex 32)")
    return EntrySigner(secret.encode())
