"""An online model of how long one batched model call takes for a batch of n items.

It fits latency(n) = a + b*n: a fixed cost per call (dispatch, the weights' pass through the
caches, the code around the call) plus a cost per item. Two parameters are learned from a few
batches and answer for sizes never run, which per-size averages cannot: the SLO controller has
to price a batch of 7 while only batches of 4 and 12 have run.

The fit is least squares weighted by age: each batch observed weighs `forgetting` times what
the next one does, so the last 1 / (1 - forgetting) batches dominate and the model follows
drift (another group's load on shared cores, a thread count changed by the allocator). It is
recursive least squares with exponential forgetting solved in closed form: five decayed sums
and a 2x2 system per prediction. RLS's recursive form keeps a covariance that grows without
bound under forgetting while every batch has the same size; the sums only shrink, so there is
no such wind-up.

Both parameters are kept at or above zero (a batch is never faster for being larger, and a call
never takes negative time): a fit with a negative slope gives way to the weighted mean, one with
a negative intercept to the fit through the origin. While every batch still weighing has had
one size, the slope cannot be told and the model predicts the mean latency seen for any size:
optimistic for larger batches, so the controller tries them and the model learns the slope.
Before any batch it cannot predict at all, and says so with None.
"""

from __future__ import annotations

import math

DEFAULT_FORGETTING = 0.95
# Below this share of E[n^2], the weighted spread of the sizes seen cannot carry a slope.
_SINGLE_SIZE_SPREAD = 1e-9


class LatencyModel:
    def __init__(self, forgetting: float = DEFAULT_FORGETTING) -> None:
        if not 0.0 < forgetting <= 1.0:
            raise ValueError(f"forgetting must be in (0, 1], not {forgetting}")
        self.forgetting = forgetting
        # Decayed sums of w, w*n, w*n^2, w*y and w*n*y over the batches observed.
        self._w = self._n = self._nn = self._y = self._ny = 0.0

    @property
    def can_predict(self) -> bool:
        return self._w > 0.0

    def observe(self, size: int, seconds: float) -> None:
        """Learns from one model call: `size` items took `seconds`."""
        if size < 1 or seconds < 0:
            raise ValueError(f"a batch of {size} items cannot take {seconds} s")
        keep = self.forgetting
        self._w = keep * self._w + 1.0
        self._n = keep * self._n + size
        self._nn = keep * self._nn + size * size
        self._y = keep * self._y + seconds
        self._ny = keep * self._ny + size * seconds

    def latency(self, size: int) -> float | None:
        """Predicted seconds of one model call on `size` items; None before any batch."""
        if not self.can_predict:
            return None
        intercept, slope = self.coefficients()
        return intercept + slope * size

    def service_rate(self, size: int) -> float | None:
        """Items per second when every batch holds `size` items; None before any batch."""
        seconds = self.latency(size)
        if seconds is None:
            return None
        return math.inf if seconds == 0 else size / seconds

    def coefficients(self) -> tuple[float, float]:
        """(a, b) of latency(n) = a + b*n, both at least 0; (0, 0) before any batch."""
        if not self.can_predict:
            return 0.0, 0.0
        mean = self._y / self._w
        spread = self._w * self._nn - self._n * self._n
        if spread <= _SINGLE_SIZE_SPREAD * self._w * self._nn:
            return mean, 0.0
        slope = (self._w * self._ny - self._n * self._y) / spread
        intercept = (self._y - slope * self._n) / self._w
        if slope < 0:
            return mean, 0.0
        if intercept < 0:
            return 0.0, self._ny / self._nn
        return intercept, slope
