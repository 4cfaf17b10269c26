"""The app's HTTP routes on FastAPI: one table of paths, each handled by the front end
(serve_app/frontend.py), with an OpenAPI schema at /openapi.json.

The schema is served through the front end like any API route, so it takes the same key. There
is no /docs or /redoc: FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN (the
fastapi package ships no copy), so any OpenAPI viewer pointed at /openapi.json stands in.

FastAPI routes by path, so Serve's access log and metrics name the route (they said `POST /`
for every request when the ingress dispatched by hand). Handlers read their own bodies, to
bound the read and the JSON depth before parsing; the schema of each body comes from the same
pydantic models the handlers parse with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from serve_app import protocol
from serve_app.frontend import FrontEnd
from serve_app.http_errors import HttpError, error_response

SCHEMA_REFS = "#/components/schemas/{model}"
SCHEMA_PATH = "/openapi.json"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: str  # the FrontEnd method
    summary: str
    body: type[BaseModel] | None = None
    open: bool = False  # a health probe: no key, never turned away


ROUTES = (
    Route("GET", "/healthz", "healthz", "Liveness of the ingress.", open=True),
    Route("GET", "/readyz", "readyz",
          "Readiness of every group: 200 ready, 429 overloaded, 503 down.", open=True),
    Route("GET", "/v1/models", "list_models", "The served models."),
    Route("POST", "/v1/chat/completions", "chat_completions",
          "Chat completion, whole or streamed.", protocol.ChatCompletionRequest),
    Route("POST", "/v1/completions", "completions",
          "Completion of a prompt, or of each of a list of prompts, whole or streamed.",
          protocol.CompletionRequest),
    Route("POST", "/v1/embeddings", "embeddings", "CLIP text or image embeddings.",
          protocol.EmbeddingRequest),
    Route("POST", "/v1/audio/transcriptions", "transcriptions",
          "Speech to text (multipart: file, model, language, response_format, "
          "timestamp_granularities[])."),
    Route("POST", "/v1/audio/translations", "translations",
          "Speech to English text (multipart: file, model, response_format)."),
    Route("POST", "/v1/pipeline", "run_pipeline",
          "Audio and image perceived side by side, then the LLM.", protocol.PipelineRequest),
    Route("GET", "/v1/usage", "usage",
          "Every tenant's usage per hour and per day (admin tenants' keys only)."),
)


def build_api(front: FrontEnd) -> FastAPI:
    app = FastAPI(title="mmserve", version="1", redirect_slashes=False,
                  description="Text, vision and speech models on Ray Serve, OpenAI-compatible.",
                  openapi_url=None, docs_url=None, redoc_url=None)
    for route in ROUTES:
        app.add_api_route(route.path, _endpoint(front, route), methods=[route.method],
                          summary=route.summary, openapi_extra=_request_body(route.body))
    app.add_api_route(SCHEMA_PATH, _schema_endpoint(front, app), methods=["GET"],
                      include_in_schema=False)
    app.add_exception_handler(HTTPException, _routing_error)
    app.openapi = lambda: _openapi(app)
    return app


def _endpoint(front: FrontEnd, route: Route):
    handler = getattr(front, route.handler)

    async def endpoint(request: Request) -> Response:
        return await front.handle(handler, request, route.path, route.open)

    endpoint.__name__ = route.handler
    return endpoint


def _schema_endpoint(front: FrontEnd, app: FastAPI):
    """/openapi.json, authenticated and admitted by the front end as every API route is."""
    async def schema(request: Request) -> Response:
        return JSONResponse(app.openapi())

    async def endpoint(request: Request) -> Response:
        return await front.handle(schema, request, SCHEMA_PATH)

    return endpoint


async def _routing_error(request: Request, exc: HTTPException) -> Response:
    """The router's own 404 and 405, in the same JSON shape as every other error."""
    path = request.url.path
    if exc.status_code == 405:
        return error_response(HttpError(405, f"method {request.method} is not allowed on {path}"))
    if exc.status_code == 404:
        return error_response(HttpError(404, f"no route {path}"))
    return error_response(HttpError(exc.status_code, str(exc.detail)))


def _request_body(model: type[BaseModel] | None) -> dict[str, Any] | None:
    if model is None:
        return None
    schema = {"$ref": SCHEMA_REFS.format(model=model.__name__)}
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for route in ROUTES:
            if route.body is not None:
                body = route.body.model_json_schema(ref_template=SCHEMA_REFS)
                components.update(body.pop("$defs", {}))
                components[route.body.__name__] = body
        app.openapi_schema = schema
    return app.openapi_schema
