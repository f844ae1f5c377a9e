"""Learnable dictionary encoding (LDE, Cai et al. 2018): frame features -> one fixed vector.

D learnable centres c_d with one learnable scale s_d each. Frame x_t is softly assigned to
the centres by w_td = softmax_d(−s_d² ‖x_t − c_d‖²); component d's output is the weighted
mean over frames of the residuals x_t − c_d; the D outputs are concatenated. The pooled
vector has the same size for any number of frames, so clips of any length fit one head.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


class LDEPooling(nn.Module):
    """(batch, frames, dim) -> (batch, components * dim). Parameters: components * (dim + 1)."""

    def __init__(self, dim: int = 128, components: int = 8, eps: float = 1e-9) -> None:
        super().__init__()
        self.dim = dim
        self.components = components
        self.eps = eps
        # initialised as in Shi et al.'s code: centres U(-1, 1), scales 1
        self.centres = nn.Parameter(torch.empty(components, dim).uniform_(-1.0, 1.0))
        self.scales = nn.Parameter(torch.ones(components))

    @property
    def out_features(self) -> int:
        return self.components * self.dim

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # computed in float32 even under autocast: the distance expansion cancels in bf16
        with _autocast_off(frames.device):
            x = frames.float()  # (batch, frames, dim)
            c = self.centres.float()  # (components, dim)
            sq_dist = (
                x.pow(2).sum(-1, keepdim=True) - 2 * x @ c.T + c.pow(2).sum(-1)
            )  # (batch, frames, components)
            w = torch.softmax(-self.scales.float().pow(2) * sq_dist, dim=-1)
            total = w.sum(dim=1)[..., None]  # (batch, components, 1)
            weighted = w.transpose(1, 2) @ x  # (batch, components, dim): sum_t w_td x_t
            residual_mean = (weighted - total * c) / (total + self.eps)
            return residual_mean.flatten(1)  # (batch, components * dim)


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Disable autocast on `device`; meta tensors (used to count MACs) have no autocast."""
    if device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)
