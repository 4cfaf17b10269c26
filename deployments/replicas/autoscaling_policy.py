"""The `queue` autoscaling policy: a replica group follows its own queue within seconds.

Serve calls the policy on its controller every control-loop tick with an AutoscalingContext
(`autoscaling: {policy: queue}` in a profile; deployments/replicas/serve_options.py builds the
Serve config):

    wanted    = ceil(ongoing + queued requests / target_ongoing_requests), within min..max
    up        as soon as `wanted` has stayed above the current target for upscale_delay_s
    down      once `wanted` has stayed below it for downscale_delay_s, to the largest count
              wanted during that stretch (a dip to 1 amid 2s does not cut capacity needed a
              second ago), so a load that hovers at a boundary does not flap

Timestamps live in the context's policy_state, so the delays are seconds whatever the loop's
period. Serve also applies its own upscale/downscale delays on top of any custom policy; the
config sets those to 0 and gives this policy the profile's delays instead (policy_kwargs).

Stdlib only, and nothing else from this project: Serve pickles this module by value into its
controller, whose process does not have this checkout on its path.
"""

from __future__ import annotations

import math
import time
from typing import Any

UP_SINCE = "queue_policy_up_since"  # when `wanted` first rose above the target
DOWN_SINCE = "queue_policy_down_since"  # when it first fell below it
DOWN_PEAK = "queue_policy_down_peak"  # the most replicas wanted since DOWN_SINCE
_KEYS = (UP_SINCE, DOWN_SINCE, DOWN_PEAK)
_EPS = 1e-9  # 32.0000001 / 16 is 2 replicas, not 3; a delay of 5 s is reached at 4.999999999 s


def replicas_for(load: float, target_ongoing_requests: float) -> int:
    """Replicas needed to carry `load` requests at `target_ongoing_requests` each."""
    return max(0, math.ceil(load / target_ongoing_requests - _EPS))


def decide(*, load: float, target_replicas: int, min_replicas: int, max_replicas: int,
           target_ongoing_requests: float, upscale_delay_s: float, downscale_delay_s: float,
           now: float, state: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The replica count to run now and the policy_state to keep; `target_replicas` is the
    count Serve is currently aiming at. Keys of `state` that are not this policy's are kept."""
    wanted = min(max(replicas_for(load, target_ongoing_requests), min_replicas), max_replicas)
    state = dict(state)
    ours = {key: state.pop(key, None) for key in _KEYS}
    decision = target_replicas
    if wanted > target_replicas:
        up_since = ours[UP_SINCE] if ours[UP_SINCE] is not None else now
        if now - up_since + _EPS >= upscale_delay_s:
            decision = wanted
        else:
            state[UP_SINCE] = up_since
    elif wanted < target_replicas:
        down_since = ours[DOWN_SINCE] if ours[DOWN_SINCE] is not None else now
        peak = max(wanted, ours[DOWN_PEAK] or 0)
        if now - down_since + _EPS >= downscale_delay_s:
            decision = peak
        else:
            state.update({DOWN_SINCE: down_since, DOWN_PEAK: peak})
    # Outside min..max (a lowered max, a raised min), the bounds win at once.
    return min(max(decision, min_replicas), max_replicas), state


class QueuePolicy:
    """What Serve calls: built once per deployment config with the policy_kwargs, then called
    with each tick's AutoscalingContext."""

    def __init__(self, upscale_delay_s: float = 0.0, downscale_delay_s: float = 30.0) -> None:
        self.upscale_delay_s = float(upscale_delay_s)
        self.downscale_delay_s = float(downscale_delay_s)

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        return decide(
            load=ctx.total_num_requests,
            target_replicas=ctx.target_num_replicas,
            min_replicas=ctx.capacity_adjusted_min_replicas,
            max_replicas=ctx.capacity_adjusted_max_replicas,
            target_ongoing_requests=ctx.config.target_ongoing_requests,
            upscale_delay_s=self.upscale_delay_s,
            downscale_delay_s=self.downscale_delay_s,
            now=ctx.current_time if ctx.current_time is not None else time.time(),
            state=ctx.policy_state or {})
