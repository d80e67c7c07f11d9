"""The traffic model: Zipf key skew, the TTL-cache hit-ratio formula, and the script's constants."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from demo import traffic
from demo.plan import MODULES_DIR


def simulate_profile_cache(rate: float, ttl_s: float, fill_s: float, duration_s: float, seed: int = 1) -> float:
    """Hit ratio of the service's cache semantics under the profile script's traffic.

    Arrivals are evenly spaced (k6's constant-arrival-rate), endpoint and id drawn
    like profile.js. A miss fills after fill_s; reads meanwhile wait for it (hits);
    the entry then lives ttl_s; a PUT drops the profile_get entry of its id (and a
    fill in flight is not stored).
    """
    rng = random.Random(seed)
    probs = traffic.zipf_probabilities()
    cum = list(itertools.accumulate(probs))
    ids = range(len(probs))
    mix = traffic.PROFILE_MIX
    expires: dict[tuple[str, int], float] = {}   # entry valid until
    filling: dict[tuple[str, int], float] = {}   # fill completes at
    hits = misses = 0
    for i in range(int(rate * duration_s)):
        t = i / rate
        key_id = rng.choices(ids, cum_weights=cum)[0]
        r = rng.random()
        if r >= mix["profile_get"] + mix["profile_feed"]:
            expires.pop(("get", key_id), None)
            filling.pop(("get", key_id), None)
            continue
        key = ("get" if r < mix["profile_get"] else "feed", key_id)
        done = filling.get(key)
        if done is not None and done <= t:
            expires[key] = done + ttl_s
            del filling[key]
            done = None
        if done is not None or expires.get(key, -1.0) > t:
            hits += 1
        else:
            misses += 1
            filling[key] = t + fill_s
    return hits / (hits + misses)


def test_zipf_puts_three_quarters_of_requests_on_20_percent_of_ids() -> None:
    probs = traffic.zipf_probabilities()
    assert len(probs) == traffic.PROFILE_IDS
    assert sum(probs) == pytest.approx(1.0)
    assert 0.74 <= traffic.top_share(probs, 0.2) <= 0.78


@pytest.mark.parametrize(("ttl_s", "duration_s"), [(1.0, 600.0), (5.0, 600.0), (30.0, 3000.0), (2.0, 8.0)])
def test_formula_matches_a_simulation_of_the_cache(ttl_s: float, duration_s: float) -> None:
    rate = 50.0
    predicted = traffic.profile_expected_hit_ratio(rate, ttl_s, fill_s=0.05)
    simulated = simulate_profile_cache(rate, ttl_s, 0.05, duration_s)
    # Steady-state formula vs finite runs (the 8 s one is the size the service test uses).
    assert simulated == pytest.approx(predicted, abs=0.03 if duration_s >= 600 else 0.05)


def test_hit_ratio_grows_with_ttl_and_rate_and_is_zero_when_off() -> None:
    assert traffic.profile_expected_hit_ratio(50, 0) == 0.0
    ratios = [traffic.profile_expected_hit_ratio(50, ttl) for ttl in (1, 5, 30, 300)]
    assert ratios == sorted(ratios) and ratios[-1] < 1.0
    assert traffic.profile_expected_hit_ratio(200, 5) > traffic.profile_expected_hit_ratio(50, 5)
    # A single key read r/s with TTL T: r*T hits per miss.
    assert traffic.key_hit_ratio(10, 1.0) == pytest.approx(10 / 11)
    # Invalidating writes shorten the entry's life.
    assert traffic.key_hit_ratio(10, 1.0, invalidate_rate=5) < traffic.key_hit_ratio(10, 1.0)


def test_profile_script_uses_the_same_distribution_as_the_model() -> None:
    script = (MODULES_DIR / "profile.js").read_text()
    assert int(re.search(r"const PROFILE_IDS = (\d+);", script).group(1)) == traffic.PROFILE_IDS  # type: ignore[union-attr]
    assert float(re.search(r"const ZIPF_S = ([\d.]+);", script).group(1)) == traffic.ZIPF_S  # type: ignore[union-attr]
    mix = re.search(r"const MIX = \{([^}]*)\};", script).group(1)  # type: ignore[union-attr]
    parsed = {k: float(v) for k, v in re.findall(r"(\w+): ([\d.]+)", mix)}
    assert parsed == traffic.PROFILE_MIX
    # The scramble is a permutation of the ids (rank -> id is one-to-one).
    scramble = int(re.search(r"const SCRAMBLE = (\d+);", script).group(1))  # type: ignore[union-attr]
    assert len({(rank * scramble) % traffic.PROFILE_IDS for rank in range(traffic.PROFILE_IDS)}) == traffic.PROFILE_IDS
