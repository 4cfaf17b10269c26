"""A fuzz of what the API makes of its request headers and writes into its answers' headers:
malformed, huge, repeated and unicode Authorization values, odd X-Request-Timeout values, any
bucket level. Whatever arrives: no unhandled exception, only a 401 (or a 400) ServeError whose
JSON body says so, and no tenant for a key that is not its own."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployments.core.errors import InvalidRequest, ServeError
from serve_app.auth import authenticate, authenticate_headers, one_authorization
from serve_app.http import TIMEOUT_HEADER, timeout_from_header
from serve_app.http_errors import error_body, error_response, status_of
from serve_app.key_directory import KeyDirectory
from serve_app.rate_limit_headers import rate_limit_headers
from serve_app.tenants import key_digest
from serve_app.token_buckets import BucketLevel

KEYS = {"key-a-7f3c9e2d41": "team-a", "key-b-0b8a6c5f92": "team-b",
        "plain-9d2e4f6a13": "default"}
FUZZ = settings(max_examples=400, deadline=None, derandomize=True)
# Every code point a str may hold, lone surrogates included (no HTTP header carries one, but
# the functions take any str).
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())
SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
RIGHT_KEY = st.sampled_from(sorted(KEYS))


def latin1(data: bytes) -> str:
    """A header value as Starlette hands it over: its bytes decoded as latin-1."""
    return data.decode("latin-1")


def right_key_bent(key: str) -> st.SearchStrategy[str]:
    """A right key changed a little: cut, extended, case-changed, or with a character swapped."""
    return st.one_of(
        st.integers(0, len(key) - 1).map(lambda n: key[:n]),
        st.text(min_size=1, max_size=4).map(lambda extra: key + extra),
        st.just(key.upper()),
        st.tuples(st.integers(0, len(key) - 1), st.characters()).filter(
            lambda swap: key[swap[0]] != swap[1]).map(
            lambda swap: key[:swap[0]] + swap[1] + key[swap[0] + 1:]))


AUTHORIZATION = st.one_of(
    st.text(ANY_CHARACTER, max_size=80),
    st.binary(max_size=200).map(latin1),
    st.builds(lambda scheme, space, key: f"{scheme}{space}{key}",
              st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token", "", "Bearer:"]),
              st.sampled_from([" ", "  ", "\t", "", "\u00a0", " \u2003"]),
              st.one_of(RIGHT_KEY, RIGHT_KEY.flatmap(right_key_bent),
                        st.text(ANY_CHARACTER, max_size=40), SURROGATES)),
    st.integers(4_000, 200_000).map(lambda n: "Bearer " + "A" * n),
    RIGHT_KEY.map(lambda key: f"Bearer {key}".encode().decode("utf-16", "replace")),
)


@pytest.fixture(scope="module")
def directory(tmp_path_factory) -> KeyDirectory:
    tenants = tmp_path_factory.mktemp("tenants") / "tenants.yaml"
    tenants.write_text("tenants:\n" + "".join(
        f"  - name: {tenant}\n    key_sha256: [{key_digest(key)}]\n"
        for key, tenant in KEYS.items() if tenant != "default"))
    plain = [key for key, tenant in KEYS.items() if tenant == "default"]
    return KeyDirectory(plain, tenants)


def assert_json_error(error: ServeError, status: int) -> None:
    assert status_of(error) == status
    body = json.loads(error_response(error).body)
    assert body == json.loads(json.dumps(error_body(error)))
    assert body["error"]["code"] == status and body["error"]["message"]


@FUZZ
@given(header=AUTHORIZATION)
def test_any_authorization_is_its_keys_tenant_or_a_401(directory, header):
    try:
        tenant = authenticate(header, directory)
    except ServeError as error:
        assert_json_error(error, 401)
        assert error.headers == {"WWW-Authenticate": "Bearer"}
        return
    scheme, _, presented = header.strip().partition(" ")
    assert scheme.lower() == "bearer"
    assert KEYS[presented.strip()] == tenant.name  # KeyError: a wrong key was let in


@FUZZ
@given(key=st.one_of(st.text(ANY_CHARACTER, max_size=60), RIGHT_KEY.flatmap(right_key_bent),
                     RIGHT_KEY, SURROGATES))
def test_the_key_lookup_finds_exactly_the_keys_it_holds(directory, key):
    tenant = directory.lookup(key)
    if key in KEYS:
        assert tenant is not None and tenant.name == KEYS[key]
    else:
        assert tenant is None


@FUZZ
@given(values=st.lists(st.one_of(RIGHT_KEY.map(lambda key: f"Bearer {key}"),
                                 st.text(ANY_CHARACTER, max_size=20)), max_size=4))
def test_a_repeated_authorization_header_is_a_401_even_with_a_right_key(values):
    try:
        single = one_authorization(values)
    except ServeError as error:
        assert len(values) > 1
        assert_json_error(error, 401)
        return
    assert len(values) <= 1 and single == (values[0] if values else None)


def test_an_anonymous_api_reads_no_authorization_header_however_many():
    anonymous = KeyDirectory(frozenset())
    assert authenticate_headers(["Bearer a", "Bearer b"], anonymous) is None
    assert authenticate_headers([], anonymous) is None


def test_a_keyed_api_takes_exactly_one_right_authorization_header(directory):
    right = f"Bearer {sorted(KEYS)[0]}"
    assert authenticate_headers([right], directory).name == KEYS[sorted(KEYS)[0]]
    for values in ([], [right, right]):
        with pytest.raises(ServeError) as refused:
            authenticate_headers(values, directory)
        assert_json_error(refused.value, 401)


TIMEOUT_TEXT = st.one_of(
    st.text(ANY_CHARACTER, max_size=40),
    st.binary(max_size=40).map(latin1),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-0", "-1", "nan", "NaN", "inf", "-inf", "1e309", "1e-400", " 30 ",
                     "1_000", "0x10", "30s", "", "\u0661\u0662", "\uff11\uff10", "3" * 5000]),
)


@FUZZ
@given(values=st.lists(TIMEOUT_TEXT, max_size=3), default=st.floats(0.001, 3600))
def test_any_request_timeout_is_a_deadline_within_the_default_or_a_400(values, default):
    try:
        seconds = timeout_from_header(values, default)
    except InvalidRequest as error:
        assert_json_error(error, 400)
        assert error.param == TIMEOUT_HEADER
        return
    assert math.isfinite(seconds) and 0 < seconds <= default
    assert len(values) <= 1


LIMIT_NAMES = ("requests", "tokens", "images", "audio-seconds")
HEADER_NAME = re.compile(r"x-ratelimit-(limit|remaining|reset)-(requests|tokens|images|"
                         r"audio-seconds)")
GO_DURATION = re.compile(r"0s|\d+ms|(\d+h)?(\d+m)?\d+(\.\d+)?s")


@st.composite
def bucket_levels(draw) -> BucketLevel:
    per_minute = draw(st.integers(1, 10**15))
    level = draw(st.floats(min_value=-1e18, max_value=per_minute))
    return BucketLevel(draw(st.sampled_from(LIMIT_NAMES)), float(per_minute), level)


@FUZZ
@given(levels=st.lists(bucket_levels(), max_size=4, unique_by=lambda level: level.limit))
def test_rate_limit_headers_are_well_formed_for_any_bucket_level(levels):
    headers = rate_limit_headers(levels)
    assert len(headers) == 3 * len(levels)
    for name, value in headers.items():
        assert HEADER_NAME.fullmatch(name), name
        assert value.isascii() and value.isprintable(), value
        if "-reset-" in name:
            assert GO_DURATION.fullmatch(value), value
        else:
            assert value.isdigit(), value
