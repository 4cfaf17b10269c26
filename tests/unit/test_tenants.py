"""The tenants file's model: the shape operators write, and every way it can be wrong."""

from __future__ import annotations

import pytest

from serve_app.tenants import Tenant, TenantsFileError, key_digest, parse_tenants, read_tenants

A_KEY, B_KEY = key_digest("a-key"), key_digest("b-key")

EXAMPLE = f"""
tenants:
  - name: team-a
    key_sha256: [{A_KEY}]
    requests_per_minute: 600
    tokens_per_minute: 200000
    images_per_minute: 600
    audio_seconds_per_minute: 1800
    max_concurrent: 16
    priority: interactive
    diagnostics: false
    admin: false
  - name: team-b
    key_sha256: [{B_KEY}]
    priority: batch
    weight: 2.5
"""


def test_the_documented_shape_parses_with_every_limit_optional():
    team_a, team_b = parse_tenants(EXAMPLE, "tenants.yaml").tenants
    assert team_a.key_sha256 == (A_KEY,)
    assert team_a.per_minute() == {"requests": 600, "tokens": 200000, "images": 600,
                                   "audio-seconds": 1800}
    assert team_a.max_concurrent == 16
    assert team_b.per_minute() == {} and team_b.max_concurrent is None
    assert (team_b.priority, team_b.diagnostics, team_b.admin) == ("batch", False, False)
    assert (team_a.weight, team_b.weight) == (1.0, 2.5)


def test_an_upper_case_digest_is_accepted_as_lower_case():
    tenants = parse_tenants(f"tenants: [{{name: t, key_sha256: [{A_KEY.upper()}]}}]", "f")
    assert tenants.tenants[0].key_sha256 == (A_KEY,)


@pytest.mark.parametrize("tenant, complaint", [
    ("{name: t, rate: 5}", "'t'.rate: Extra inputs are not permitted"),
    ("{name: t, requests_per_minute: '600'}", "'t'.requests_per_minute"),
    ("{name: t, requests_per_minute: 0}", "greater than or equal to 1"),
    ("{name: t, max_concurrent: 2.5}", "'t'.max_concurrent"),
    ("{name: t, priority: urgent}", "'t'.priority"),
    ("{name: t, weight: 0}", "'t'.weight"),
    ("{name: t, weight: '2'}", "'t'.weight"),
    ("{name: t, weight: .inf}", "'t'.weight"),
    ("{name: t, diagnostics: 'yes'}", "'t'.diagnostics"),
    ("{name: t, key_sha256: [abc]}", "'t'.key_sha256.0"),
    ("{name: t, key_sha256: [" + "g" * 64 + "]}", "'t'.key_sha256.0"),
    ("{name: t, key_sha256: a-key}", "'t'.key_sha256"),
    ("{name: 'team a'}", "tenants.'team a'.name"),
    ("{key_sha256: []}", "tenants.0.name: Field required"),
])
def test_a_wrong_field_is_named_in_the_error(tenant, complaint):
    with pytest.raises(TenantsFileError) as caught:
        parse_tenants(f"tenants: [{tenant}]", "tenants.yaml")
    assert str(caught.value).startswith("tenants.yaml: ")
    assert complaint in str(caught.value)


def test_one_digest_under_two_tenants_is_rejected_naming_both():
    text = f"tenants: [{{name: a, key_sha256: [{A_KEY}]}}, {{name: b, key_sha256: [{A_KEY}]}}]"
    with pytest.raises(TenantsFileError, match="listed under 'a' and 'b'"):
        parse_tenants(text, "f")


def test_one_digest_twice_under_one_tenant_is_rejected():
    with pytest.raises(TenantsFileError, match="listed under 'a' and 'a'"):
        parse_tenants(f"tenants: [{{name: a, key_sha256: [{A_KEY}, {A_KEY.upper()}]}}]", "f")


def test_a_name_listed_twice_is_rejected():
    with pytest.raises(TenantsFileError, match="'a' is listed twice"):
        parse_tenants("tenants: [{name: a}, {name: a}]", "f")


@pytest.mark.parametrize("text, complaint", [
    ("", "valid dictionary"), ("tenants: [", "not valid YAML"), ("teams: []", "teams"),
    ("tenants: {name: a}", "valid list")])
def test_a_file_that_is_no_tenants_file_is_rejected(text, complaint):
    with pytest.raises(TenantsFileError, match=complaint):
        parse_tenants(text, "f")


def test_a_file_that_cannot_be_read_says_so(tmp_path):
    with pytest.raises(TenantsFileError, match="cannot read it"):
        read_tenants(tmp_path / "missing.yaml")


def test_a_tenant_is_immutable():
    tenant = Tenant(name="t")
    with pytest.raises(ValueError):
        tenant.requests_per_minute = 5
