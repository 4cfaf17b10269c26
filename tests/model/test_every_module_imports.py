"""Every project module imports, with every dependency of the full venv installed."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.unit.test_layers import ROOT, module_name, project_modules


@pytest.mark.parametrize("path", [p for p in project_modules() if p.stem != "__main__"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_imports(path: Path) -> None:
    """Catches a name imported from a module that no longer has it (engines import their
    heavy packages lazily, so this needs none of them)."""
    importlib.import_module(module_name(path))
