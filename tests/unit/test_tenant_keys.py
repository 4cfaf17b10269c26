"""`python -m serve_app.tenant_keys`: a new key is printed once and only its digest is kept;
the file stays a valid tenants file, private, replaced whole."""

from __future__ import annotations

import stat

import pytest
import yaml

from serve_app.tenant_keys import main
from serve_app.tenants import key_digest, read_tenants


def new_key(capsys, path, tenant="team-a") -> str:
    assert main(["new", "--tenant", tenant, "--file", str(path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1
    return printed[0]


def test_a_new_key_is_printed_once_and_only_its_digest_is_written(tmp_path, capsys):
    path = tmp_path / "tenants.yaml"
    key = new_key(capsys, path)
    assert len(key) >= 40
    text = path.read_text()
    assert key not in text
    (tenant,) = read_tenants(path).tenants
    assert (tenant.name, tenant.key_sha256) == ("team-a", (key_digest(key),))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keys_are_random_and_add_up_under_their_tenant(tmp_path, capsys):
    path = tmp_path / "tenants.yaml"
    first, second = new_key(capsys, path), new_key(capsys, path)
    other = new_key(capsys, path, "team-b")
    assert len({first, second, other}) == 3
    tenants = {t.name: t.key_sha256 for t in read_tenants(path).tenants}
    assert tenants == {"team-a": (key_digest(first), key_digest(second)),
                       "team-b": (key_digest(other),)}


def test_a_tenants_limits_survive_a_new_key_and_the_file_is_replaced(tmp_path, capsys):
    path = tmp_path / "tenants.yaml"
    path.write_text("tenants:\n  - name: team-a\n    requests_per_minute: 60\n"
                    "    priority: batch\n")
    path.chmod(0o644)
    inode = path.stat().st_ino
    key = new_key(capsys, path)
    (tenant,) = read_tenants(path).tenants
    assert (tenant.requests_per_minute, tenant.priority) == (60, "batch")
    assert tenant.key_sha256 == (key_digest(key),)
    assert path.stat().st_ino != inode  # a new file renamed over the old: readers see a change
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["tenants.yaml"]  # no temporary left


def test_an_invalid_file_is_left_as_it_is(tmp_path, capsys):
    path = tmp_path / "tenants.yaml"
    path.write_text("tenants: [{name: a, rate: 5}]\n")
    assert main(["new", "--tenant", "a", "--file", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "rate" in captured.err
    assert path.read_text() == "tenants: [{name: a, rate: 5}]\n"


def test_an_invalid_tenant_name_writes_nothing(tmp_path, capsys):
    path = tmp_path / "tenants.yaml"
    assert main(["new", "--tenant", "team a", "--file", str(path)]) == 1
    assert capsys.readouterr().out == ""
    assert not path.exists()


def test_revoke_removes_the_one_digest_its_prefix_names(tmp_path, capsys):
    path = tmp_path / "tenants.yaml"
    kept, gone = new_key(capsys, path), new_key(capsys, path)
    assert main(["revoke", "--sha256", key_digest(gone)[:10].upper(), "--file", str(path)]) == 0
    assert read_tenants(path).tenants[0].key_sha256 == (key_digest(kept),)
    assert main(["revoke", "--sha256", key_digest(gone)[:10], "--file", str(path)]) == 1
    assert "0 key digests start with" in capsys.readouterr().err


def test_revoke_wants_a_prefix_long_enough_to_name_one_key(tmp_path, capsys):
    path = tmp_path / "tenants.yaml"
    key = new_key(capsys, path)
    assert main(["revoke", "--sha256", key_digest(key)[:4], "--file", str(path)]) == 1
    assert "at least 8 hex digits" in capsys.readouterr().err
    assert read_tenants(path).tenants[0].key_sha256 == (key_digest(key),)


def test_list_shows_each_tenant_with_its_digests_first_digits(tmp_path, capsys):
    path = tmp_path / "tenants.yaml"
    key = new_key(capsys, path)
    raw = yaml.safe_load(path.read_text())
    raw["tenants"].append({"name": "idle"})
    path.write_text(yaml.safe_dump(raw))
    assert main(["list", "--file", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"team-a: {key_digest(key)[:12]}",
                                                   "idle: no keys"]


@pytest.mark.parametrize("argv", [[], ["new", "--file", "x"], ["new", "--tenant", "a"]])
def test_missing_arguments_are_a_usage_error(argv):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
