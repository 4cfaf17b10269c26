"""Whether a call whose replica died may be sent to another: only an idempotent call that is
cheap.

A replica can die of what it was running: a file that takes its decoder down, a batch that runs
it out of memory, a call past model_call_timeout_s that its health check ends. Sent again, such
a call takes the next replica down too, and with it every request that replica held. A cheap
call is unlikely to be the cause, and its retry costs the next replica little if it is; an
expensive one gets its 503 (Retry-After) and the client decides. What each kind costs:

    embed_texts   always cheap: the text tower, its inputs capped at the door
    embed_images  at most `max_images` images (each capped at vision.max_image_pixels)
    classify      one image: cheap while `max_images` is at least 1
    transcribe    a file of at most `max_audio_bytes` (the ingress does not decode audio, so
    speech        its bytes stand for its length; compressed silence says less than it holds,
                  but no audio is longer than audio.max_duration_s)

Any other method (text generation above all) is not retried, unless the replica's whole node
died (`node_lost`): a call cannot take its node down (its raylet and every worker), so sending it
to a replica on another node cannot spread the loss. A stream is never sent again (its first
items may have reached the client), whatever killed its replica.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployments.core.config import IngressSettings

_DEFAULTS = IngressSettings()


@dataclass(frozen=True)
class RetryRule:
    enabled: bool = _DEFAULTS.retry_idempotent
    max_images: int = _DEFAULTS.retry_max_images
    max_audio_bytes: int = _DEFAULTS.retry_max_audio_bytes

    @classmethod
    def from_settings(cls, ingress: IngressSettings) -> RetryRule:
        return cls(ingress.retry_idempotent, ingress.retry_max_images,
                   ingress.retry_max_audio_bytes)

    def allows(self, method: str, args: tuple, node_lost: bool = False) -> bool:
        """Whether `method(*args)` may be sent again after its replica died (with its node,
        when `node_lost`)."""
        if not self.enabled:
            return False
        if node_lost:
            return True
        if method == "embed_texts":
            return True
        if method == "embed_images":
            return bool(args) and len(args[0]) <= self.max_images
        if method == "classify":
            return self.max_images >= 1
        if method in ("transcribe", "speech"):
            return bool(args) and len(args[0]) <= self.max_audio_bytes
        return False
