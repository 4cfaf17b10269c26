"""The smallest Serve app that shows where a request was served: the node of its replica.
Deployed by the ingress tests on a cluster of their own, so they need no model."""

from __future__ import annotations

from ray import serve


@serve.deployment
class Echo:
    async def __call__(self, request) -> dict[str, str]:
        import ray

        return {"node": ray.get_runtime_context().get_node_id()}


app = Echo.bind()
