"""The smallest Serve app that shows where a request was served: the node of its replica, and
the `version` of its user_config (so a test sees a redeploy reach the replicas). Deployed by
the ingress tests on a cluster of their own, so they need no model."""

from __future__ import annotations

from ray import serve


@serve.deployment
class Echo:
    def __init__(self) -> None:
        self.version: str | None = None

    def reconfigure(self, user_config: dict) -> None:
        self.version = user_config.get("version")

    async def __call__(self, request) -> dict[str, str | None]:
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "version": self.version}


app = Echo.bind()
