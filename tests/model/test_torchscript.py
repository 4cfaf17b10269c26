"""Frozen TorchScript traces: same outputs as eager for any batch size, eager kept otherwise."""

from __future__ import annotations

import torch

from deployments.engines.torchscript import frozen_trace


class Tower(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The batch dimension is read from the input, as a ViT's class token expand does.
        token = torch.ones(1, 1, 6).expand(x.shape[0], -1, -1)
        return self.proj(torch.cat([token, x], dim=1)).mean(dim=1)


class Untraceable(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> dict:
        return {"not": "a tensor"}


def test_trace_matches_eager_at_other_batch_sizes():
    tower = Tower().eval()
    traced = frozen_trace(tower, torch.zeros(2, 3, 6))
    assert isinstance(traced, torch.jit.ScriptModule)
    for batch in (1, 5):
        x = torch.randn(batch, 3, 6)
        with torch.inference_mode():
            torch.testing.assert_close(traced(x), tower(x))


def test_a_module_that_cannot_be_traced_runs_eager():
    module = Untraceable()
    assert frozen_trace(module, torch.zeros(1, 2)) is module
