"""API keys: where they are read from, how a request is checked, the 401 it gets, and which
profiles may serve without them. (Tenants: tests/unit/test_key_directory.py.)"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest

from cluster.launch import refuse_anonymous_exposure
from deployments.core.config import ApiKeys, ConfigError, load_config
from deployments.core.errors import InvalidRequest, Overloaded, ServeError
from serve_app.auth import authenticate, check_exposure, is_loopback, load_api_keys
from serve_app.http_errors import HttpError, error_response, status_of
from serve_app.key_directory import KeyDirectory
from serve_app.tenants import key_digest
from tests.profiles import PROFILES, REPO, load_profile

KEYS = frozenset({"key-one", "key-two", "key-three"})
DIRECTORY = KeyDirectory(KEYS)
ANONYMOUS = KeyDirectory(frozenset())
PROFILE_NAMES = sorted(p.stem for p in PROFILES.glob("*.yaml"))


def test_keys_come_from_the_environment_variable_comma_separated(monkeypatch):
    monkeypatch.setenv("MY_KEYS", " alpha, beta ,,gamma ")
    assert load_api_keys(ApiKeys(env="MY_KEYS")) == {"alpha", "beta", "gamma"}


def test_keys_come_from_a_file_one_per_line_without_comments(tmp_path, monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    keys = tmp_path / "keys"
    keys.write_text("# the team's keys\nalpha\n\n  beta  \n#gamma\n")
    assert load_api_keys(ApiKeys(file=str(keys))) == {"alpha", "beta"}


def test_keys_from_the_variable_and_the_file_are_all_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSERVE_API_KEYS", "alpha")
    keys = tmp_path / "keys"
    keys.write_text("beta\n")
    assert load_api_keys(ApiKeys(file=str(keys))) == {"alpha", "beta"}


def test_no_variable_and_no_file_means_no_keys(monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    assert load_api_keys(ApiKeys()) == frozenset()
    assert load_api_keys(ApiKeys(env=None)) == frozenset()


@pytest.mark.parametrize("value", ["", "  ", ",", " , ,"])
def test_a_variable_that_is_set_but_holds_no_key_stops_the_start(value, monkeypatch):
    monkeypatch.setenv("MMSERVE_API_KEYS", value)
    with pytest.raises(ConfigError, match="MMSERVE_API_KEYS is set but holds no key"):
        load_api_keys(ApiKeys())


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n   \n"])
def test_a_key_file_that_holds_no_key_stops_the_start(content, tmp_path, monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    empty = tmp_path / "keys"
    empty.write_text(content)
    with pytest.raises(ConfigError, match=f"ingress.api_keys.file: {empty} holds no key"):
        load_api_keys(ApiKeys(file=str(empty)))


def test_a_configured_key_file_that_is_missing_stops_the_start(tmp_path):
    missing = tmp_path / "no-such-keys"
    with pytest.raises(ConfigError, match=f"ingress.api_keys.file: cannot read {missing}"):
        load_api_keys(ApiKeys(env=None, file=str(missing)))


def test_without_keys_every_request_passes_with_no_tenant():
    assert authenticate(None, ANONYMOUS) is None
    assert authenticate("Bearer anything", ANONYMOUS) is None


@pytest.mark.parametrize("header", ["Bearer key-two", "bearer key-two", "  Bearer   key-two "])
def test_any_configured_key_is_accepted_as_the_default_tenant(header):
    tenant = authenticate(header, DIRECTORY)
    assert tenant.name == "default"
    assert tenant.per_minute() == {} and tenant.max_concurrent is None


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "key-two", "Basic key-two",
                                    "Bearer key-tw", "Bearer key-two-and-more", "Bearer KEY-TWO"])
def test_a_missing_or_wrong_key_is_a_401_asking_for_a_bearer_token(header):
    with pytest.raises(ServeError) as caught:
        authenticate(header, DIRECTORY)
    assert status_of(caught.value) == 401
    assert caught.value.headers == {"WWW-Authenticate": "Bearer"}
    assert "key-" not in caught.value.message  # never echoes a key


def test_keys_are_held_and_looked_up_by_their_sha256_only():
    assert set(DIRECTORY.table) == {key_digest(key) for key in KEYS}
    assert not set(DIRECTORY.table) & KEYS
    assert DIRECTORY.lookup("key-one").name == "default"
    assert DIRECTORY.lookup(key_digest("key-one")) is None  # the digest is not a key


def test_the_401_response_is_openai_shaped_with_www_authenticate():
    with pytest.raises(ServeError) as caught:
        authenticate("Bearer wrong", DIRECTORY)
    response = error_response(caught.value)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = json.loads(response.body)
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["code"] == 401


def test_retry_after_is_sent_in_whole_seconds():
    response = error_response(Overloaded("busy", retry_after_s=2.2))
    assert response.headers["retry-after"] == "3"
    assert "retry-after" not in error_response(InvalidRequest("bad")).headers


def test_an_error_with_headers_survives_pickling_across_ray():
    sent = HttpError(401, "no", headers={"WWW-Authenticate": "Bearer"})
    error = pickle.loads(pickle.dumps(sent))
    assert (status_of(error), error.headers) == (401, {"WWW-Authenticate": "Bearer"})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost",
                                  "LOCALHOST", "::ffff:127.0.0.1"])
def test_loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.0.2.2", "example.com", ""])
def test_addresses_others_can_reach(host):
    assert not is_loopback(host)


def test_an_anonymous_api_may_listen_on_loopback_only():
    check_exposure("127.0.0.1", False, allow_anonymous=False)
    check_exposure("0.0.0.0", True, allow_anonymous=False)
    check_exposure("0.0.0.0", False, allow_anonymous=True)
    for host in ("0.0.0.0", "::", None):
        with pytest.raises(ConfigError, match="refusing to serve without API keys"):
            check_exposure(host, False, allow_anonymous=False)


def public(name: str) -> bool:
    return not is_loopback(load_profile(name).get("http_options", {}).get("host", "127.0.0.1"))


def ingress_settings(name: str):
    return load_config(load_profile(name)["applications"][0]["args"]).ingress


def test_the_cloud_profiles_bind_all_interfaces():
    assert {name for name in PROFILE_NAMES if public(name)} == {"gpu", "inferentia", "mixed"}


@pytest.mark.parametrize("name", [n for n in PROFILE_NAMES if public(n)])
def test_a_public_profile_needs_keys_and_holds_none(name, monkeypatch, tmp_path):
    """The cloud profiles read their keys from a file only the ingress's nodes hold."""
    settings = ingress_settings(name)
    assert not settings.allow_anonymous
    assert settings.api_keys.file == "~/.mmserve-secrets/api-keys"
    assert not _values_named(load_profile(name), "MMSERVE_API_KEYS")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MMSERVE_API_KEYS", "ignored: the profiles name no variable")
    with pytest.raises(SystemExit, match="ingress.api_keys.file: cannot read"):
        refuse_anonymous_exposure(load_profile(name))
    keys = tmp_path / ".mmserve-secrets" / "api-keys"
    keys.parent.mkdir()
    keys.write_text("a-key\n")
    refuse_anonymous_exposure(load_profile(name))


@pytest.mark.parametrize("name", [n for n in PROFILE_NAMES if not public(n)])
def test_a_loopback_profile_may_serve_anonymously(name, monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    refuse_anonymous_exposure(load_profile(name))
    assert not _values_named(load_profile(name), "MMSERVE_API_KEYS")


def _values_named(tree: object, name: str) -> list:
    """Every value stored under the key `name` anywhere in a parsed profile (an env_vars entry
    would put a key in clear)."""
    if isinstance(tree, dict):
        found = [value for key, value in tree.items() if key == name]
        return found + [v for value in tree.values() for v in _values_named(value, name)]
    if isinstance(tree, list):
        return [v for item in tree for v in _values_named(item, name)]
    return []


def test_the_launcher_refuses_a_public_profile_without_keys_before_starting_anything(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MMSERVE_API_KEYS", "MMSERVE_HOME")}
    env.update(PYTHONPATH=str(REPO), HOME=str(tmp_path))
    temp_dir = tmp_path / "ray"
    public_with_env_keys = tmp_path / "public.yaml"
    public_with_env_keys.write_text(json.dumps({
        "http_options": {"host": "0.0.0.0"},
        "applications": [{"name": "mmserve", "import_path": "serve_app.app:build_app"}]}))
    for profile, refusal in ((public_with_env_keys, "refusing to serve without API keys on "
                                                    "0.0.0.0"),
                             ("gpu", "ingress.api_keys.file: cannot read")):
        result = subprocess.run(
            [sys.executable, "-m", "cluster.launch", "--profile", str(profile), "--temp-dir",
             str(temp_dir)], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert refusal in result.stderr
        assert not temp_dir.exists()  # no Ray head was started
        assert not (tmp_path / ".cache").exists()  # nor anything written
