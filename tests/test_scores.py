"""Scores from music21's corpus as note lists per part."""

from __future__ import annotations

import pytest

from instrec.errors import InstrecError
from instrec.synth.scores import multipart_works, read_score


def test_works_alternate_between_composers() -> None:
    works = multipart_works(("bach", "palestrina"))
    assert [w.split("/")[0] for w in works[:4]] == ["bach", "palestrina", "bach", "palestrina"]
    assert len(works) == len(set(works)) > 1000


def test_chorale_parts_come_highest_first() -> None:
    score = read_score("bach/bwv66.6.mxl")
    assert len(score.parts) == 4  # soprano, alto, tenor, bass
    means = [sum(n.pitch for n in part) / len(part) for part in score.parts]
    assert means == sorted(means, reverse=True)
    assert score.parts[0][0].pitch == 73  # the chorale opens on C#5 in the soprano
    assert score.quarters == pytest.approx(36.0)


def test_unknown_composer_and_work_raise() -> None:
    with pytest.raises(InstrecError, match="nobody"):
        multipart_works(("nobody",))
    with pytest.raises(InstrecError, match="cannot parse"):
        read_score("bach/no_such_work.mxl")
