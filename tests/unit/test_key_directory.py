"""Which tenant a key belongs to: plain keys as the tenant `default`, the tenants file's
digests, the file read again when it changes (an injected clock), and the start-up checks of
every key source."""

from __future__ import annotations

import logging
import os

import pytest

from deployments.core.config import ConfigError, IngressSettings
from serve_app.auth import load_key_directory
from serve_app.key_directory import KeyDirectory
from serve_app.tenant_keys import new_key, revoke
from serve_app.tenants import key_digest
from tests.unit.fake_clock import FakeClock

INTERVAL_S = 2.0


def tenants_yaml(*tenants: tuple[str, list[str]], extra: str = "") -> str:
    lines = ["tenants:"]
    for name, keys in tenants:
        lines += [f"  - name: {name}", f"    key_sha256: [{', '.join(map(key_digest, keys))}]"]
        lines += [f"    {extra}"] if extra else []
    return "\n".join(lines) + "\n"


@pytest.fixture
def clock():
    return FakeClock(1000.0)


@pytest.fixture
def tenants_file(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(tenants_yaml(("team-a", ["a-key"]), ("team-b", ["b-key"])))
    return path


def directory(path, clock, plain=()) -> KeyDirectory:
    return KeyDirectory(plain, path, INTERVAL_S, clock)


def rewrite(path, text: str) -> None:
    """A new file renamed over the old one, as `tenant_keys` writes it."""
    temporary = path.with_suffix(".new")
    temporary.write_text(text)
    os.replace(temporary, path)


def test_each_key_finds_its_tenant(tenants_file, clock):
    keys = directory(tenants_file, clock)
    assert keys.lookup("a-key").name == "team-a"
    assert keys.lookup("b-key").name == "team-b"
    assert keys.lookup("c-key") is None
    assert not keys.anonymous


def test_plain_keys_are_the_unlimited_default_tenant_beside_the_file(tenants_file, clock):
    keys = directory(tenants_file, clock, plain=["plain-key"])
    tenant = keys.lookup("plain-key")
    assert tenant.name == "default" and tenant.per_minute() == {} and tenant.diagnostics
    assert keys.lookup("a-key").name == "team-a"


def test_plain_keys_take_the_limits_of_a_default_tenant_the_file_lists(tmp_path, clock):
    path = tmp_path / "tenants.yaml"
    path.write_text(tenants_yaml(("default", ["d-key"]), extra="requests_per_minute: 5"))
    keys = directory(path, clock, plain=["plain-key"])
    assert keys.lookup("plain-key").requests_per_minute == 5
    assert keys.lookup("d-key").requests_per_minute == 5


def test_a_key_both_plain_and_in_the_file_is_the_files_tenants(tenants_file, clock):
    assert directory(tenants_file, clock, plain=["a-key"]).lookup("a-key").name == "team-a"


def test_a_change_is_read_once_the_interval_has_passed(tenants_file, clock):
    keys = directory(tenants_file, clock)
    rewrite(tenants_file, tenants_yaml(("team-a", ["a-key", "new-key"]), ("team-b", ["b-key"])))
    clock.now += INTERVAL_S / 2
    assert keys.lookup("new-key") is None  # not looked at yet
    clock.now += INTERVAL_S / 2
    assert keys.lookup("new-key").name == "team-a"


def test_a_revoked_key_stops_working_within_the_interval(tenants_file, clock):
    keys = directory(tenants_file, clock)
    assert keys.lookup("b-key") is not None
    rewrite(tenants_file, tenants_yaml(("team-a", ["a-key"]), ("team-b", [])))
    clock.now += INTERVAL_S
    assert keys.lookup("b-key") is None
    assert keys.lookup("a-key").name == "team-a"


def test_an_edit_in_place_is_seen_too(tenants_file, clock):
    keys = directory(tenants_file, clock)
    with tenants_file.open("a") as file:
        file.write("  - name: team-c\n    key_sha256: [" + key_digest("c-key") + "]\n")
    clock.now += INTERVAL_S
    assert keys.lookup("c-key").name == "team-c"


def test_the_file_is_not_read_again_while_it_is_unchanged(tenants_file, clock, monkeypatch):
    keys = directory(tenants_file, clock)
    reads = []
    monkeypatch.setattr("serve_app.key_directory.read_tenants",
                        lambda path: reads.append(path))
    for _ in range(3):
        clock.now += INTERVAL_S
        assert keys.lookup("a-key").name == "team-a"
    assert reads == []


def test_all_keys_revoked_leaves_every_request_unauthorized_never_anonymous(tenants_file,
                                                                             clock):
    keys = directory(tenants_file, clock)
    rewrite(tenants_file, "tenants: []\n")
    clock.now += INTERVAL_S
    assert keys.lookup("a-key") is None
    assert not keys.anonymous


@pytest.mark.parametrize("broken", ["tenants: [", "tenants: [{name: a, rate: 1}]\n"])
def test_an_invalid_file_keeps_the_last_good_tenants_and_logs_once(tenants_file, clock,
                                                                   caplog, broken):
    keys = directory(tenants_file, clock)
    rewrite(tenants_file, broken)
    with caplog.at_level(logging.ERROR, logger="ray.serve"):
        for _ in range(3):
            clock.now += INTERVAL_S
            assert keys.lookup("a-key").name == "team-a"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "tenants read before stay in force" in errors[0].getMessage()
    rewrite(tenants_file, tenants_yaml(("team-a", ["other-key"])))
    clock.now += INTERVAL_S
    assert keys.lookup("a-key") is None and keys.lookup("other-key").name == "team-a"


def test_a_file_that_disappears_keeps_the_last_good_tenants(tenants_file, clock, caplog):
    keys = directory(tenants_file, clock)
    tenants_file.unlink()
    with caplog.at_level(logging.ERROR, logger="ray.serve"):
        clock.now += INTERVAL_S
        assert keys.lookup("a-key").name == "team-a"
    assert "cannot read it" in caplog.text


def test_the_key_command_and_the_directory_work_together(tenants_file, clock):
    keys = directory(tenants_file, clock)
    key = new_key(tenants_file, "team-c")
    clock.now += INTERVAL_S
    assert keys.lookup(key).name == "team-c"
    revoke(tenants_file, key_digest(key)[:16])
    clock.now += INTERVAL_S
    assert keys.lookup(key) is None


# -- the start-up checks ----------------------------------------------------------------------


@pytest.fixture
def no_key_env(monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    monkeypatch.delenv("MMSERVE_TENANTS_FILE", raising=False)
    return monkeypatch


def test_no_key_source_at_all_is_the_anonymous_api(no_key_env):
    assert load_key_directory(IngressSettings()).anonymous


def test_the_tenants_file_comes_from_the_config_or_the_variable(no_key_env, tenants_file):
    named = IngressSettings(tenants={"file": str(tenants_file)})
    assert load_key_directory(named).lookup("a-key").name == "team-a"
    no_key_env.setenv("MMSERVE_TENANTS_FILE", str(tenants_file))
    assert load_key_directory(IngressSettings()).lookup("b-key").name == "team-b"


@pytest.mark.parametrize("content", ["tenants: []\n", "tenants: [{name: a}]\n"])
def test_a_tenants_file_without_a_key_stops_the_start(no_key_env, tmp_path, content):
    path = tmp_path / "tenants.yaml"
    path.write_text(content)
    no_key_env.setenv("MMSERVE_TENANTS_FILE", str(path))
    with pytest.raises(ConfigError, match="holds no key digest; add one with"):
        load_key_directory(IngressSettings())


def test_a_tenants_file_that_is_missing_or_invalid_stops_the_start(no_key_env, tmp_path):
    no_key_env.setenv("MMSERVE_TENANTS_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="ingress.tenants: .*cannot read it"):
        load_key_directory(IngressSettings())
    (tmp_path / "bad.yaml").write_text("tenants: [{name: a, ratee: 1}]")
    with pytest.raises(ConfigError, match="ratee"):
        load_key_directory(IngressSettings(tenants={"file": str(tmp_path / "bad.yaml")}))


def test_a_tenants_variable_that_is_set_but_empty_stops_the_start(no_key_env):
    no_key_env.setenv("MMSERVE_TENANTS_FILE", " ")
    with pytest.raises(ConfigError, match="MMSERVE_TENANTS_FILE is set but empty"):
        load_key_directory(IngressSettings())


def test_an_empty_key_file_never_falls_back_to_anonymous(no_key_env, tmp_path):
    empty = tmp_path / "keys"
    empty.write_text("")
    with pytest.raises(ConfigError, match="holds no key"):
        load_key_directory(IngressSettings(api_keys={"file": str(empty)}))
