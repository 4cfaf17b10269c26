"""The fake's configuration classes, as tensorrt_llm.llmapi names them."""

from __future__ import annotations

import enum
from typing import Any


class KvCacheConfig:
    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


class QuantAlgo(enum.Enum):
    FP8 = "FP8"
    W4A16_AWQ = "W4A16_AWQ"


class QuantConfig:
    def __init__(self, quant_algo: QuantAlgo) -> None:
        self.quant_algo = quant_algo
