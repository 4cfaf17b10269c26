"""Two tiers as the real app has them, without a model: a front deployment that calls a backend
group through serve_app's ReplicaGroup (its retry of calls whose replica died, its errors as
HTTP), so that losing a node takes both a front and a backend replica mid-request."""

from __future__ import annotations

import asyncio

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

# Long enough that a node killed under load has calls in flight on it.
BACKEND_CALL_S = 0.3


@serve.deployment
class Backend:
    async def embed_texts(self, texts: list[str], context) -> dict[str, str]:
        import ray

        await asyncio.sleep(BACKEND_CALL_S)
        return {"node": ray.get_runtime_context().get_node_id()}


@serve.deployment
class Front:
    def __init__(self, backend) -> None:
        from serve_app.calls import ReplicaGroup

        self.backend = ReplicaGroup("backend", backend)

    async def __call__(self, request: Request) -> JSONResponse:
        from deployments.core.deadline import deadline_after
        from deployments.core.errors import ServeError
        from serve_app.http_errors import error_response

        try:
            reply = await self.backend.call("embed_texts", ["x"], deadline=deadline_after(20),
                                            idempotent=True)
        except ServeError as error:
            return error_response(error)
        return JSONResponse(reply)


app = Front.bind(Backend.bind())
