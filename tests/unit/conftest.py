"""The unit tier stays light: a run of this tier alone that imported a heavy package fails.

`make unit` runs this folder in a venv of pyproject's `unit` group, where the heavy packages are
not installed at all; in the full venv (`make test`) they are, and this check is what keeps a
unit test from quietly depending on one. tests/unit/test_unit_tier_is_light.py runs it in a
subprocess, so `make test` fails too when a unit test module imports one.

`redis_server` is a real redis-server of its own (cluster/redis_server.py) for the tests of what
the ingress keeps in Redis: the cache, the limits' buckets, usage totals.

`client` is the app's routes in process over `groups`, the fake replica groups of
tests/unit/frontend_fakes.py; a module whose groups must answer otherwise overrides `groups`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from cluster.redis_server import RedisServer
from tests.unit.frontend_fakes import FakeGroup, app_client, fake_groups

HEAVY = ("torch", "ray", "transformers", "open_clip", "faster_whisper", "ctranslate2", "vllm")
UNIT = Path(__file__).resolve().parent


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: run `make system-deps`")
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def groups() -> tuple[FakeGroup, FakeGroup, FakeGroup]:
    """Fake text, vision and audio groups (tests/unit/frontend_fakes.py); a test module that
    needs other answers overrides this fixture and keeps `client`."""
    return fake_groups()


@pytest.fixture
def client(groups: tuple[FakeGroup, FakeGroup, FakeGroup]) -> TestClient:
    """The app's routes in process over `groups`, anonymous."""
    return app_client(groups)


def heavy_modules_loaded() -> list[str]:
    return [name for name in HEAVY if name in sys.modules]


def _only_unit_tests(session: pytest.Session) -> bool:
    paths = [Path(str(item.path)) for item in session.items]
    return bool(paths) and all(UNIT in path.parents for path in paths)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fails a run of the unit tier alone (collected or run) that loaded a heavy package."""
    if not _only_unit_tests(session):
        return
    loaded = heavy_modules_loaded()
    if loaded:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"the unit tier imported {', '.join(loaded)}: move the test to tests/model " \
                  "or import the package lazily in the module under test"
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

