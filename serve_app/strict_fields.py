"""Strict request bodies: a field the app does not implement is a 400 that names it.

Each request model (serve_app/protocol.py) declares what the app does. Anything else a client
sends, at any depth (a message, a content part, stream_options), is refused before any value
is checked, with OpenAI's code `unsupported_parameter`: a client that asks for JSON output,
tools or logprobs learns at once that it will not get them, instead of a 200 that ignored
them. The only fields accepted without an effect are the informational ones the models
declare as such (docs/openai-compatibility.md lists them).

The walk follows the model's own annotations: lists item by item, unions of models by their
`type` discriminator, free-form dicts (metadata) not at all. pydantic's `extra="forbid"` on
every model stays behind it, so a shape the walk does not know is still refused.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from deployments.core.errors import UnsupportedParameter

COMPATIBILITY_DOC = "docs/openai-compatibility.md"
# The pydantic error type of a value of a declared field that the server does not implement
# (`store: true`); the front end answers it with OpenAI's code of the same name.
UNSUPPORTED_VALUE = "unsupported_value"


def unsupported(param: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"{param!r} is not supported by this server (see "
                                f"{COMPATIBILITY_DOC})", param)


def unsupported_value(message: str) -> PydanticCustomError:
    """Raised by a model's validator for a value it declares but does not implement."""
    return PydanticCustomError(UNSUPPORTED_VALUE, message)


def reject_unknown_fields(payload: Any, model: type[BaseModel]) -> None:
    """Raises UnsupportedParameter naming the first field of `payload` that `model` (or a model
    nested in it) does not declare, as a path: `messages[0].content[1].detail_level`."""
    _walk(payload, model, "")


def _walk(value: Any, annotation: Any, path: str) -> None:
    origin = get_origin(annotation)
    if origin is Annotated:
        _walk(value, get_args(annotation)[0], path)
    elif origin is Union or origin is types.UnionType:
        member = _member_for(value, get_args(annotation))
        if member is not None:
            _walk(value, member, path)
    elif origin is list and isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, get_args(annotation)[0], f"{path}[{index}]")
    elif _is_model(annotation) and isinstance(value, dict):
        _walk_model(value, annotation, path)


def _walk_model(value: dict, model: type[BaseModel], path: str) -> None:
    fields = _fields_by_wire_name(model)
    for key, item in value.items():
        param = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise unsupported(param)
        _walk(item, fields[key].annotation, param)


def _fields_by_wire_name(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields under the names a client sends: the alias where a field has one
    (`schema`, which pydantic's BaseModel reserves as an attribute name)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _member_for(value: Any, members: tuple[Any, ...]) -> Any:
    """The union member `value` will be validated as: the list member for a list, the model
    whose `type` literal it names for a dict (the only model, when there is one)."""
    if isinstance(value, list):
        return next((m for m in members if get_origin(_bare(m)) is list), None)
    if not isinstance(value, dict):
        return None
    models = [_bare(m) for m in members if _is_model(_bare(m))]
    if len(models) == 1:
        return models[0]
    return next((m for m in models if value.get("type") in _type_literals(m)), None)


def _type_literals(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("type")
    if field is None or get_origin(field.annotation) is not Literal:
        return ()
    return get_args(field.annotation)


def _bare(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
