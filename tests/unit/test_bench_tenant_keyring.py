"""The tenants file a bench run makes: digests only, a private file the app accepts, limits
changed by rewriting it whole, and the keys redacted from whatever the bench writes."""

from __future__ import annotations

import stat

from bench.redact import REDACTED, scrub
from bench.tenant_keyring import Keyring
from serve_app.tenants import key_digest, read_tenants


def test_each_tenant_gets_a_key_whose_digest_alone_is_in_a_private_valid_file(tmp_path):
    keyring = Keyring(tmp_path, {"team-a": {"requests_per_minute": 5},
                                 "batch": {"priority": "batch"}, "ops": {"admin": True}})
    tenants = {t.name: t for t in read_tenants(keyring.path).tenants}
    assert set(tenants) == {"team-a", "batch", "ops"}
    for name, tenant in tenants.items():
        assert tenant.key_sha256 == (key_digest(keyring.key(name)),)
        assert keyring.key(name) not in keyring.path.read_text()
    assert tenants["team-a"].requests_per_minute == 5 and tenants["ops"].admin
    assert tenants["batch"].priority == "batch"
    assert stat.S_IMODE(keyring.path.stat().st_mode) == 0o600


def test_limits_change_and_the_keys_stay(tmp_path):
    keyring = Keyring(tmp_path, {"team-a": {"requests_per_minute": 5}})
    keyring.update({"team-a": {"requests_per_minute": 900, "tokens_per_minute": 10}})
    assert keyring.fields("team-a") == {"name": "team-a", "requests_per_minute": 900,
                                        "tokens_per_minute": 10}
    keyring.update({"team-a": {"tokens_per_minute": None}})
    tenant = read_tenants(keyring.path).tenants[0]
    assert tenant.tokens_per_minute is None
    assert tenant.key_sha256 == (key_digest(keyring.key("team-a")),)


def test_the_keys_are_redacted_from_what_the_bench_writes(tmp_path):
    keyring = Keyring(tmp_path, {"team-a": {}})
    assert scrub(f"sent with {keyring.key('team-a')}") == f"sent with {REDACTED}"
