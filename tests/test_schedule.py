"""The warm-up + cosine schedule: its shape, and that LambdaLR steps it per batch."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from instrec.train.schedule import warmup_cosine


def test_warmup_rises_linearly_to_the_peak() -> None:
    assert [warmup_cosine(s, 4, 20) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_cosine_halves_midway_and_ends_at_zero() -> None:
    warmup, total = 10, 110
    assert warmup_cosine(warmup, warmup, total) == 1.0
    assert warmup_cosine(warmup + 50, warmup, total) == pytest.approx(0.5)
    assert warmup_cosine(total, warmup, total) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(total + 5, warmup, total) == pytest.approx(0.0, abs=1e-12)
    decay = [warmup_cosine(s, warmup, total) for s in range(warmup, total + 1)]
    assert all(a > b for a, b in itertools.pairwise(decay))


def test_cosine_matches_the_closed_form() -> None:
    for step in (0, 7, 33, 99):
        expected = 0.5 * (1 + math.cos(math.pi * step / 100))
        assert warmup_cosine(step, 0, 100) == pytest.approx(expected)


def test_lambda_lr_applies_it_per_optimiser_step() -> None:
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, 3, 10))
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen[:3] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3])
    assert seen[-1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 6 / 7)))
