"""Who is shown X-Cache, Server-Timing and a stream's final server_timing
(serve_app/diagnostics.py): the anonymous API, the plain keys' tenant, tenants allowed them;
nobody else, and nobody whose tenant is unknown on a keyed API."""

from __future__ import annotations

import pytest

from serve_app.diagnostics import allowed, final_event, headers
from serve_app.key_directory import PLAIN_KEYS_TENANT, KeyDirectory
from serve_app.tenants import Tenant, key_digest

TIMING = "ingress;dur=1.0, total;dur=2.0"


@pytest.mark.parametrize(("anonymous_api", "tenant", "shown"), [
    (True, None, True),                                   # the anonymous API, as before
    (False, PLAIN_KEYS_TENANT, True),                     # plain keys: `default`, as before
    (False, Tenant(name="team-a", diagnostics=True), True),
    (False, Tenant(name="team-b"), False),                # a tenant's default
    (False, Tenant(name="default"), False),               # a `default` the file defines
    (False, None, False),                                 # unknown: no key, or a probe
])
def test_who_is_shown_the_diagnostics(anonymous_api, tenant, shown):
    assert allowed(anonymous_api, tenant) is shown


def test_a_tenant_not_allowed_gets_no_diagnostics_header_nor_final_timing():
    assert headers(False, "hit", TIMING) == {}
    assert final_event(False, TIMING) == {}


def test_a_tenant_allowed_gets_those_that_have_a_value():
    assert headers(True, "miss", TIMING) == {"X-Cache": "miss", "Server-Timing": TIMING}
    assert headers(True, None, TIMING) == {"Server-Timing": TIMING}  # the cache took no part
    assert headers(True, "hit", None) == {"X-Cache": "hit"}  # server_timing off
    assert final_event(True, TIMING) == {"server_timing": TIMING}
    assert final_event(True, None) == {}


def test_plain_keys_keep_their_diagnostics_unless_the_file_defines_default(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(f"tenants:\n  - name: team-a\n    key_sha256: [{key_digest('a-key')}]\n")
    directory = KeyDirectory({"plain"}, path)
    assert allowed(directory.anonymous, directory.lookup("plain"))
    assert not allowed(directory.anonymous, directory.lookup("a-key"))
    path.write_text(f"tenants:\n  - name: default\n    key_sha256: [{key_digest('d-key')}]\n")
    redefined = KeyDirectory({"plain"}, path)
    assert not allowed(redefined.anonymous, redefined.lookup("plain"))
