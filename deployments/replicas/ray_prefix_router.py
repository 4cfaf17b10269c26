"""`text.routing: ray_prefix`: Ray's `PrefixCacheAffinityRouter`, adapted to the text group, so
the app's own router (deployments/replicas/prefix_router.py) can be measured against it.

Ray's router keeps a character prefix tree of the prompts it routed, per replica, in a
detached actor, and sends a request to the replica with the longest match while queue lengths
differ by at most `imbalanced_threshold` (power of two choices past it; below a 10% match, the
replica with the smallest tree). As shipped it cannot route this app's text group, so two
things change and nothing else:
- the prompt: Ray looks for a `messages` or `prompt` attribute on an argument (an OpenAI
  request object) and fails the request without one; our `generate(messages, params,
  deadline)` takes the message list itself (or /v1/completions' prompt string) as its first
  argument;
- the tree actor: Ray creates it with default options, which reserve a CPU to schedule it;
  on a machine whose CPUs the replicas hold it never starts and routing hangs. Here it
  reserves none.
It is imported from `ray.llm._internal` because `ray.serve.llm` imports pyarrow, which the
app's environment does not have.

Stdlib and Ray only: Serve pickles this module by value for every process that routes to the
text group.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.llm._internal.serve.routing_policies.prefix_aware.prefix_aware_router import (
    PrefixCacheAffinityRouter,
)
from ray.llm._internal.serve.routing_policies.prefix_aware.prefix_tree import PrefixTreeActor
from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE
from ray.serve.request_router import PendingRequest


class RayPrefixRouter(PrefixCacheAffinityRouter):
    def initialize_state(self, **kwargs: Any) -> None:
        if kwargs.get("tree_actor") is None:
            kwargs["tree_actor"] = self._tree_actor_reserving_no_cpu()
        super().initialize_state(**kwargs)

    def _tree_actor_reserving_no_cpu(self) -> Any:
        """Ray's own actor, under Ray's name for this deployment, with num_cpus=0."""
        deployment = self._deployment_id
        namespace = "::".join([SERVE_NAMESPACE, *([deployment.app_name, deployment.name]
                                                  if deployment else [])])
        actor = PrefixTreeActor.options(name="LlmPrefixTreeActor", namespace=namespace,
                                        get_if_exists=True, lifetime="detached",
                                        num_cpus=0).remote()
        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        ray.get(controller._register_shutdown_cleanup_actor.remote(actor))
        return actor

    def _extract_text_from_request(self, pending_request: PendingRequest) -> str:
        first = pending_request.args[0] if pending_request.args else None
        if isinstance(first, list):  # generate/stream(messages, params, deadline)
            return self._normalize_prompt_to_string(first)
        if isinstance(first, str):  # generate/stream(prompt, ...) of /v1/completions
            return first
        return super()._extract_text_from_request(pending_request)
