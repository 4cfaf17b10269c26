"""The Ray Serve ingress: the front end (serve_app/frontend.py) over handles to the three
replica groups, serving the FastAPI routes of serve_app/routes.py."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve

from deployments.core.config import AppConfig
from serve_app.auth import check_exposure, serve_http_host
from serve_app.calls import ReplicaGroup
from serve_app.frontend import FrontEnd
from serve_app.log_flush import start_log_flusher
from serve_app.routes import build_api


@serve.deployment
@serve.ingress()
class Ingress(FrontEnd):
    def __init__(self, config: dict[str, Any], text: Any, vision: Any, audio: Any) -> None:
        super().__init__(AppConfig.model_validate(config), ReplicaGroup("text", text),
                         ReplicaGroup("vision", vision), ReplicaGroup("audio", audio))
        check_exposure(serve_http_host(), not self.keys.anonymous,
                       self.limits.allow_anonymous)
        start_log_flusher(self.observability.log_flush_interval_s)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self)
