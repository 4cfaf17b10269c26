"""Fail fast, in one sentence, when an engine's package is not installed in this Python."""

from __future__ import annotations

import importlib.util
import sys


class MissingEngineError(ImportError):
    """An engine was configured whose Python package this replica cannot import."""


def require(module: str, package: str, engine: str, hint: str = "") -> None:
    """Raises MissingEngineError naming `package` unless `module` is importable here."""
    if importlib.util.find_spec(module) is None:
        raise MissingEngineError(
            f"the {engine} engine needs the Python package {package!r}, which is not installed "
            f"in this replica's Python ({sys.executable}){'; ' + hint if hint else ''}")
