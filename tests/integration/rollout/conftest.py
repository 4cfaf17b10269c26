"""This folder redeploys the shared test app under load; afterwards the app goes back to
TEST_ARGS for the tests after it."""

from __future__ import annotations

import pytest

from tests.conftest import deploy


@pytest.fixture(scope="package")
def restored_app(ray_cluster, app_url):
    """The shared app's URL; whatever this folder's tests deploy is undone after them."""
    try:
        yield app_url
    finally:
        deploy(ray_cluster)
