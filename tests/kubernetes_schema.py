"""A CustomResourceDefinition's openAPIV3Schema as a JSON Schema that `jsonschema` checks a
manifest against as the Kubernetes API server does on create, with `kubectl apply`'s default
strict field validation.

Kubernetes' extensions, each handled:
- an object with `properties` takes no other field (strict validation rejects unknown fields),
  unless `x-kubernetes-preserve-unknown-fields`;
- `x-kubernetes-int-or-string`: an integer or a string;
- `nullable`: null too;
- `x-kubernetes-list-type: set`: unique items; `map` lists' key uniqueness is not checked here;
- `x-kubernetes-map-type`, `x-kubernetes-list-map-keys`: merge strategies, nothing to check;
- `x-kubernetes-validations` (CEL): not evaluated; returned with their paths, for the caller to
  show that none applies to what it checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ITEM = "[]"


@dataclass
class CrdSchema:
    schema: dict[str, Any]
    cel_rules: list[tuple[tuple[str, ...], str]] = field(default_factory=list)


def crd_schema(crd: dict[str, Any], version: str) -> CrdSchema:
    """The JSON Schema of `version` of the CRD, and its CEL rules with their paths."""
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    result = CrdSchema({})
    result.schema = _convert(served["schema"]["openAPIV3Schema"], (), result.cel_rules)
    return result


def _convert(node: dict[str, Any], path: tuple[str, ...],
             cel_rules: list[tuple[tuple[str, ...], str]]) -> dict[str, Any]:
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-")
           and k not in ("properties", "items", "additionalProperties", "anyOf", "nullable")}
    for rule in node.get("x-kubernetes-validations", []):
        cel_rules.append((path, rule["rule"]))
    if "properties" in node:
        out["properties"] = {name: _convert(child, (*path, name), cel_rules)
                             for name, child in node["properties"].items()}
    if "items" in node:
        out["items"] = _convert(node["items"], (*path, ITEM), cel_rules)
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(node["additionalProperties"], (*path, ITEM),
                                               cel_rules)
    elif "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    elif "anyOf" in node:
        out["anyOf"] = node["anyOf"]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def values_at(document: Any, path: tuple[str, ...]) -> list[Any]:
    """Every value the document holds at `path` (ITEM steps into each list item or map value)."""
    found = [document]
    for step in path:
        if step == ITEM:
            found = [v for f in found
                     for v in (f if isinstance(f, list) else f.values() if isinstance(f, dict)
                               else [])]
        else:
            found = [f[step] for f in found if isinstance(f, dict) and step in f]
    return found
