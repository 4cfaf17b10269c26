"""Reads the Prometheus text format, keeping only the metrics asked for.

Ray's metrics agent exports about 1 MB per scrape; filtering lines by name before parsing keeps
scraping cheap on the machine under test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float

    def key(self) -> tuple:
        return (self.name, tuple(sorted(self.labels.items())))


def canonical(name: str) -> str:
    """Ray prefixes exported names with 'ray_'; compare names without it."""
    return name[4:] if name.startswith("ray_") else name


def parse(text: str, wanted: tuple[str, ...]) -> list[Sample]:
    """Samples whose name (without Ray's 'ray_' prefix) is in `wanted`."""
    samples = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name_end = min((i for i in (line.find("{"), line.find(" ")) if i >= 0), default=-1)
        if name_end < 0 or canonical(line[:name_end]) not in wanted:
            continue
        sample = parse_line(line, name_end)
        if sample is not None:
            samples.append(sample)
    return samples


def parse_line(line: str, name_end: int) -> Sample | None:
    name = canonical(line[:name_end])
    labels: dict[str, str] = {}
    rest = line[name_end:]
    if rest.startswith("{"):
        close = rest.rfind("}")
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\")
                  for k, v in _LABEL.findall(rest[1:close])}
        rest = rest[close + 1:]
    try:
        value = float(rest.split()[0])
    except (IndexError, ValueError):
        return None
    return Sample(name, labels, value)
