"""Every module imports only its own layer and the layers below it (docs/architecture.md).

    5 tools      cluster/ (local clusters, launch), bench/
    4 front end  serve_app/ (HTTP routes, auth, limits, pipeline, the app builder)
    3 replicas   deployments/replicas/ (one class per modality, the batcher, the model thread)
    2 engines    deployments/engines/ (one module per backend)
    1 core       deployments/core/ (config, errors, model store, media, shared types)

Each folder is one layer: no package holds both a layer and one that imports it.

Core and engines never import Ray Serve or an HTTP framework: an engine raises core errors and
the front end alone maps them to HTTP.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = (  # most specific prefix first
    ("deployments.core", 1), ("deployments.engines", 2), ("deployments.replicas", 3),
    ("deployments", 1), ("serve_app", 4), ("cluster", 5), ("bench", 5),
)
LAYER_FOLDERS = ("deployments/core", "deployments/engines", "deployments/replicas", "serve_app")
FORBIDDEN_BELOW_REPLICAS = ("ray.serve", "starlette", "fastapi", "serve_app.http_errors")


def layer_of(module: str) -> int | None:
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[str]:
    """Every module the file imports, at any depth (imports inside functions count too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def project_modules() -> list[Path]:
    return sorted(path for folder in ("serve_app", "deployments", "cluster", "bench")
                  for path in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    own = layer_of(module_name(path))
    upward = []
    for name in imported_modules(path):
        layer = layer_of(name)
        if layer is not None and layer > own:
            upward.append(name)
        if own <= 2 and name.startswith(FORBIDDEN_BELOW_REPLICAS):
            upward.append(name)
    assert not upward, f"{module_name(path)} (layer {own}) imports upward: {sorted(set(upward))}"


def test_the_layer_table_places_every_module() -> None:
    assert all(layer_of(module_name(path)) for path in project_modules())


def test_each_layer_is_a_folder_of_its_own() -> None:
    """deployments/ only holds the three lower layers' folders; no layer folder nests another."""
    assert sorted(p.name for p in (ROOT / "deployments").glob("*.py")) == ["__init__.py"]
    for folder in LAYER_FOLDERS:
        nested = [p for p in (ROOT / folder).iterdir()
                  if p.is_dir() and (p / "__init__.py").exists()]
        assert not nested, f"{folder} holds packages: {nested}"
