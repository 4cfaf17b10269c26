"""The Ray Serve ingress: the front end (serve_app/frontend.py) over handles to the three
replica groups, serving the FastAPI routes of serve_app/routes.py."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from ray import serve
from ray.serve.context import _get_serve_request_context

from deployments.core.config import AppConfig
from serve_app.access_tenant import access_log_tenants
from serve_app.auth import check_exposure, serve_http_host
from serve_app.calls import ReplicaGroup
from serve_app.canary_split import CANARY, MAIN, CanarySplit, Variant
from serve_app.frontend import FrontEnd, Handler
from serve_app.log_flush import start_log_flusher
from serve_app.routes import build_api


@serve.deployment
@serve.ingress()
class Ingress(FrontEnd):
    def __init__(self, config: dict[str, Any], text: Any, vision: Any, audio: Any,
                 canaries: dict[str, Any] | None = None) -> None:
        """`canaries`: the handle of each group's canary deployment, by group name."""
        app = AppConfig.model_validate(config)
        handles = {"text": text, "vision": vision, "audio": audio}
        super().__init__(app, *(replica_group(app, name, handle, (canaries or {}).get(name))
                                for name, handle in handles.items()))
        check_exposure(serve_http_host(), not self.keys.anonymous,
                       self.limits.allow_anonymous)
        start_log_flusher(self.observability.log_flush_interval_s)
        self.access_tenants = access_log_tenants()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self)

    async def handle(self, handler: Handler, request: Request, route: str,
                     open_route: bool = False) -> Response:
        """The front end's answer; the tenant it was for goes into Serve's access line."""
        response = await super().handle(handler, request, route, open_route)
        tenant = getattr(request.state, "tenant", None)
        if tenant is not None:
            self.access_tenants.note(_get_serve_request_context().request_id, tenant.name)
        return response


def replica_group(config: AppConfig, name: str, handle: Any, canary: Any) -> ReplicaGroup:
    """The group `name` over its handle, split with its canary's by the canary's weight."""
    settings = getattr(config, name)
    main = Variant(MAIN, settings.version, handle)
    canary_settings = settings.canary_settings()
    if canary is None or canary_settings is None:
        return ReplicaGroup(name, handle, version=settings.version)
    split = CanarySplit(main, Variant(CANARY, canary_settings.version, canary),
                        settings.canary.weight)
    return ReplicaGroup(name, handle, split=split, version=settings.version)
