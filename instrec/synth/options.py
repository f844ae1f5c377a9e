"""Named rendering ingredients chosen on the command line: 'all', 'none' or a list."""

from __future__ import annotations

from collections.abc import Sequence

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
