"""The logprobs of /v1/completions in OpenAI's legacy shape, from the same token entries the
chat route sends (deployments/engines/token_logprobs.py): parallel lists of the tokens, their
logprobs, their top alternatives as {token: logprob}, and each token's character offset in the
text. The legacy request asks with `logprobs: N` (0 to 5): the text call's logprobs=True and
top_logprobs=N (`legacy_logprobs_fields`)."""

from __future__ import annotations

from typing import Any

MAX_LEGACY_LOGPROBS = 5


def legacy_logprobs_fields(logprobs: int | None) -> dict[str, Any]:
    """SamplingParams keywords for a legacy request's `logprobs`."""
    return {"logprobs": logprobs is not None, "top_logprobs": logprobs or 0}


def legacy_logprobs(entries: list[dict] | None, offset: int = 0) -> dict[str, Any] | None:
    """A completion choice's `logprobs` (None: not asked for); `offset` is where the
    completion's text starts (the prompt's length when it is echoed)."""
    if entries is None:
        return None
    offsets, position = [], offset
    for entry in entries:
        offsets.append(position)
        position += len(entry["token"])
    return {"tokens": [entry["token"] for entry in entries],
            "token_logprobs": [entry["logprob"] for entry in entries],
            "top_logprobs": [{top["token"]: top["logprob"] for top in entry["top_logprobs"]}
                             for entry in entries],
            "text_offset": offsets}
