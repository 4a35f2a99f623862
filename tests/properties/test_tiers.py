"""Tier matching: a member's tier is the highest whose rule their experience meets, and
more experience never means a lower tier."""
from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from portal.loyalty.tiers import Level, _best
from tests.properties.conftest import PURE

MEMBER = 7
WINDOWS = (3, 6, 12)


@st.composite
def ladders(draw):
    """A lowest level and up to five above it with rising thresholds, as check_levels
    allows: each one either on all experience or on a window of months."""
    steps = draw(st.lists(st.integers(1, 500), max_size=5))
    levels, threshold = [Level(id=1, rank=0, threshold=None, rule=None, window_months=None)], 0
    for rank, step in enumerate(steps, start=1):
        threshold += step
        rule = draw(st.sampled_from(["accumulated", "window"]))
        levels.append(Level(id=rank + 1, rank=rank, threshold=threshold, rule=rule,
                            window_months=draw(st.sampled_from(WINDOWS))
                            if rule == "window" else None))
    return sorted(levels, key=lambda lv: lv.rank, reverse=True)  # as PlanTiers keeps them


@st.composite
def experience(draw):
    """All of a member's experience and, within it, what fell in each window (a shorter
    window holds no more than a longer one)."""
    accumulated = draw(st.integers(0, 3000))
    sums, cap = {}, accumulated
    for months in sorted(WINDOWS, reverse=True):
        cap = sums[months] = draw(st.integers(0, cap))
    return accumulated, sums


def _amount(level: Level, accumulated: int, sums: dict) -> int:
    return accumulated if level.rule == "accumulated" else sums[level.window_months]


def _windows(sums: dict) -> dict:
    return {months: {MEMBER: amount} for months, amount in sums.items()}


@PURE
@given(levels=ladders(), exp=experience())
@example(levels=[Level(2, 1, 100, "window", 12),
                 Level(1, 0, None, None, None)], exp=(500, {3: 0, 6: 0, 12: 99}))
def test_the_tier_is_the_highest_whose_rule_is_met(levels, exp):
    accumulated, sums = exp
    met = [lv for lv in levels if lv.rank == 0 or _amount(lv, accumulated, sums) >= lv.threshold]
    assert _best(levels, accumulated, _windows(sums), MEMBER) == max(met, key=lambda lv: lv.rank)


@PURE
@given(levels=ladders(), exp=experience(), more=st.integers(0, 2000), recent=st.booleans())
def test_more_experience_never_lowers_the_tier(levels, exp, more, recent):
    """`more` experience earned now (so inside every window) or long ago (only in the
    accumulated total)."""
    accumulated, sums = exp
    after = {m: a + (more if recent else 0) for m, a in sums.items()}
    before = _best(levels, accumulated, _windows(sums), MEMBER)
    later = _best(levels, accumulated + more, _windows(after), MEMBER)
    assert later.rank >= before.rank
