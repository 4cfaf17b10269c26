"""docs/configuration.md, generated from the config schema (deployments/core/config.py).

Every settings class becomes a section: its docstring, then a table of its fields with their
type (and bounds), default and description. The prose around the reference is hand-written in
config_docs_template.md, where `<!-- reference -->` marks the place of the tables.

    python -m cluster.config_docs            # rewrites docs/configuration.md
    python -m cluster.config_docs --check    # exits 1 when docs/configuration.md is stale
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from deployments.core.config import AppConfig, DeploymentSettings

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "configuration.md"
TEMPLATE = Path(__file__).with_name("config_docs_template.md")
MARKER = "<!-- reference -->"
GROUPS = ("text", "vision", "audio")
BOUNDS = ((annotated_types.Ge, "ge", ">="), (annotated_types.Gt, "gt", ">"),
          (annotated_types.Le, "le", "<="), (annotated_types.Lt, "lt", "<"),
          (annotated_types.MinLen, "min_length", "length >="))


def anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The settings classes a field's type names (itself, or members of a union)."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in nested_models(arg)]


def sections(root: type[BaseModel] = AppConfig) -> dict[type[BaseModel], list[str]]:
    """Every settings class under `root`, depth first, with the dotted paths it is set at.

    A model group's class (TextSettings, ...) comes after DeploymentSettings, which holds the
    fields every group shares and is documented once at `<group>`."""
    found: dict[type[BaseModel], list[str]] = {}

    def visit(model: type[BaseModel], path: str) -> None:
        if issubclass(model, DeploymentSettings) and model is not DeploymentSettings:
            visit(DeploymentSettings, path)
        found.setdefault(model, [])
        if path not in found[model]:
            found[model].append(path)
        for name, field in own_fields(model).items():
            for nested in nested_models(field.annotation):
                visit(nested, f"{path}.{name}" if path else name)

    visit(root, "")
    return found


def own_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The fields a group's class adds to (or redefines over) DeploymentSettings; all others'."""
    if not issubclass(model, DeploymentSettings) or model is DeploymentSettings:
        return dict(model.model_fields)
    declared = vars(model).get("__annotations__", {})
    return {name: field for name, field in model.model_fields.items()
            if name in declared or name not in DeploymentSettings.model_fields}


def shown_paths(paths: list[str]) -> list[str]:
    """Paths with text.X, vision.X and audio.X folded into `<group>.X` when all three are set
    there; `the top level` for the root."""
    shown: list[str] = []
    for path in paths:
        head, dot, rest = path.partition(".")
        if head in GROUPS and all(f"{group}{dot}{rest}" in paths for group in GROUPS):
            path = f"<group>{dot}{rest}"
        if path not in shown:
            shown.append(path)
    return shown


def type_name(annotation: Any) -> str:
    """A reader's name for a field's type: Literal values, optional, nested classes linked."""
    if annotation is type(None):
        return "null"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{anchor(annotation)})"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{json.dumps(arg)}`" for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(arg) for arg in args)}]"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def bounds(field: FieldInfo) -> str:
    """`>= 1, <= 1024` from the field's constraints."""
    found = []
    for constraint in field.metadata:
        for kind, attribute, symbol in BOUNDS:
            if isinstance(constraint, kind):
                found.append(f"{symbol} {getattr(constraint, attribute)}")
    return ", ".join(found)


def default_text(field: FieldInfo) -> str:
    """The default as a profile would write it; for a nested class, what differs from its own
    defaults (`max_batch_size: 16`), else a pointer to its section."""
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        changed = {name: getattr(value, name) for name, info in type(value).model_fields.items()
                   if name in value.model_fields_set and getattr(value, name) != info.default}
        if changed:
            return ", ".join(f"`{name}: {json.dumps(item)}`" for name, item in changed.items())
        return "its defaults"
    if value is None:
        return "unset"
    return f"`{json.dumps(value)}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def field_rows(model: type[BaseModel]) -> Iterator[str]:
    yield "| field | type | default | meaning |"
    yield "| --- | --- | --- | --- |"
    for name, field in own_fields(model).items():
        kind = type_name(field.annotation)
        limit = bounds(field)
        if limit:
            kind = f"{kind}, {limit}"
        yield (f"| `{name}` | {kind} | {default_text(field)} | "
               f"{cell(field.description or '')} |")


def docstring(model: type[BaseModel]) -> str:
    """The class's docstring as Markdown paragraphs (lines of a paragraph joined)."""
    paragraphs = inspect.cleandoc(model.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def section(model: type[BaseModel], paths: list[str]) -> str:
    where = ", ".join(f"`{path}`" for path in shown_paths(paths) if path) or "The top level"
    lines = [f'<a id="{anchor(model)}"></a>', "", f"### {where}", "",
             f"{model.__name__}: {docstring(model)}", ""]
    if issubclass(model, DeploymentSettings) and model is not DeploymentSettings:
        lines += [f"Besides [every group's fields](#{anchor(DeploymentSettings)}):", ""]
    return "\n".join(lines + list(field_rows(model)))


def reference() -> str:
    return "\n\n".join(section(model, paths) for model, paths in sections().items())


def render() -> str:
    """docs/configuration.md as the schema and the template make it now."""
    template = TEMPLATE.read_text()
    if template.count(MARKER) != 1:
        raise ValueError(f"{TEMPLATE} must hold {MARKER} once")
    return template.replace(MARKER, reference())


def undocumented(root: type[BaseModel] = AppConfig) -> list[str]:
    """`Class.field` for each field without a description, and `Class` for a class without a
    docstring of its own."""
    missing = []
    for model in sections(root):
        if "__doc__" not in vars(model) or not model.__doc__:
            missing.append(model.__name__)
        missing += [f"{model.__name__}.{name}" for name, field in model.model_fields.items()
                    if not field.description]
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/configuration.md differs from what would be written")
    args = parser.parse_args(argv)
    missing = undocumented()
    if missing:
        print(f"fields or classes without a description: {', '.join(missing)}", file=sys.stderr)
        return 1
    text = render()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python -m cluster.config_docs", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
