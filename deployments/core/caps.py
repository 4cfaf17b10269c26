"""Caps enforced both at the front door and by the replica that would do the work, so a
caller that reaches a replica's handle directly meets the same limits."""

from __future__ import annotations

from deployments.core.errors import InvalidRequest


def check_labels(labels: list[str], max_labels: int, max_label_chars: int) -> None:
    if len(labels) > max_labels:
        raise InvalidRequest(f"labels: {len(labels)} labels; the limit is {max_labels}",
                             "labels")
    for index, label in enumerate(labels):
        if len(label) > max_label_chars:
            raise InvalidRequest(f"labels[{index}]: {len(label)} characters; the limit is "
                                 f"{max_label_chars}", f"labels[{index}]")
