"""Named rendering ingredients chosen on the command line ('all', 'none' or a list), and
how their values are drawn."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from instrec.errors import InstrecError


def parse_named(names: Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    """The ingredients named, in `known`'s order; 'all' for every one, 'none' for none
    (`what` names the kind in the error, e.g. "timbre option")."""
    chosen = set(names)
    if "all" in chosen:
        chosen = (chosen - {"all"}) | set(known)
    chosen -= {"none", ""}
    unknown = sorted(chosen - set(known))
    if unknown:
        raise InstrecError(f"unknown {what} {', '.join(unknown)} (known: {', '.join(known)})")
    return tuple(name for name in known if name in chosen)


def log_uniform_of(rng: np.random.Generator) -> Callable[[float, float], float]:
    """A draw of `rng` spread evenly on a log scale between (low, high): times, ratios
    and frequencies, where doubling matters more than adding."""
    return lambda low, high: float(np.exp(rng.uniform(np.log(low), np.log(high))))
