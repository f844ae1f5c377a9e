"""The learning-rate schedule of both training stages: linear warm-up, then cosine to zero."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate before optimiser step `step` (0-based).

    Rises linearly to 1 over `warmup_steps` (the first step already moves, at
    1 / warmup_steps), then follows half a cosine down to 0 at `total_steps`. Stepped
    once per batch, as the paper's "warm-up 3 epochs then cosine" is applied per step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
