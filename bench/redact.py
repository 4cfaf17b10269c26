"""API keys kept out of everything the bench writes: reports are committed, and a key on the
command line (`--api-key KEY`) or in a URL (`http://user:KEY@host`) would be committed with them.

The command line a report records has those values replaced; then every file the bench writes
(JSON and Markdown) is scrubbed of the keys this process knows (the `--api-key` given, and
$MMSERVE_API_KEY / $MMSERVE_API_KEYS) and of any URL's password, wherever they appear.
"""

from __future__ import annotations

import json
import os
import re

REDACTED = "<redacted>"
SECRET_OPTIONS = ("--api-key",)
KEY_ENVS = ("MMSERVE_API_KEY", "MMSERVE_API_KEYS")  # one key; comma-separated keys
# Shorter values are not scrubbed from the text (a 3-letter key would garble every report);
# the command line's option values are redacted whatever their length.
MIN_SCRUBBED_CHARS = 6
# scheme://user:PASSWORD@ (the user may be empty)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")
_registered: set[str] = set()


def register_secret(secret: str | None) -> None:
    """A key given to this process some other way than the environment (`--api-key`)."""
    if secret:
        _registered.add(secret)


def known_secrets() -> set[str]:
    from_env = {key.strip() for name in KEY_ENVS
                for key in os.environ.get(name, "").split(",") if key.strip()}
    return _registered | from_env


def redact_argv(argv: list[str]) -> list[str]:
    """`argv` with the value of every secret option (also as `--opt=VALUE`, or abbreviated as
    argparse allows) and every URL's password replaced."""
    redacted, hide_next = [], False
    for arg in argv:
        name, equals, _ = arg.partition("=")
        if hide_next:
            redacted.append(REDACTED)
        elif _is_secret_option(name) and equals:
            redacted.append(f"{name}={REDACTED}")
        else:
            redacted.append(_URL_PASSWORD.sub(rf"\1{REDACTED}@", arg))
        hide_next = not hide_next and _is_secret_option(arg)
    return redacted


def _is_secret_option(name: str) -> bool:
    return len(name) > 3 and any(option.startswith(name) for option in SECRET_OPTIONS)


def scrub(text: str) -> str:
    """`text` without any known key (as written, or escaped inside a JSON string) and without
    any URL's password."""
    for secret in sorted(known_secrets(), key=len, reverse=True):
        if len(secret) < MIN_SCRUBBED_CHARS:
            continue
        for form in {secret, json.dumps(secret)[1:-1]}:
            text = text.replace(form, REDACTED)
    return _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
