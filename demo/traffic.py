"""The demo scripts' traffic model, and the cache hit ratio it implies.

`modules/profile.js` draws every profile id from a Zipf distribution with exponent
`ZIPF_S` over ids 1..`PROFILE_IDS` (with s = 1 over 500 ids, the hottest 20 % of ids
get 76 % of requests), and picks each request's endpoint by `PROFILE_MIX`. The
constants here and in the script must agree (a test checks it).

Expected hit ratio of a TTL cache (entries live `ttl_s` from when they are filled,
hits do not extend them; a write invalidates its key). For one key with Poisson
reads at rate r and Poisson invalidating writes at rate w, each cache cycle starts
with a miss; the entry then lives L = (1 - e^(-w*T)) / w (L = T when w = 0), where
T = ttl_s + fill_s (requests that arrive while the miss is being filled wait for it
and count as hits). Reads during the entry's life are hits, so per key

    hits / reads = r*L / (1 + r*L)

and over all keys the ratio is the read-weighted mean:

    H = sum_k r_k * h_k / sum_k r_k,  with r_k = rate * read_share * p_k.

`expected_hit_ratio` computes H for a distribution; `profile_expected_hit_ratio`
applies it to the profile module (both cacheable endpoints, profile_get
invalidated by profile_put on the same id).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PROFILE_IDS = 500
ZIPF_S = 1.0
# Share of the profile module's requests per endpoint (sums to 1).
PROFILE_MIX: dict[str, float] = {"profile_get": 0.6, "profile_feed": 0.3, "profile_put": 0.1}


def zipf_probabilities(n: int = PROFILE_IDS, s: float = ZIPF_S) -> list[float]:
    """P(id = k) for k = 1..n, proportional to 1 / k**s; index 0 is id 1."""
    if n < 1:
        raise ValueError("n must be >= 1")
    weights = [1.0 / (k**s) for k in range(1, n + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def top_share(probabilities: Sequence[float], fraction: float) -> float:
    """Share of requests that go to the most popular `fraction` of keys."""
    ordered = sorted(probabilities, reverse=True)
    count = max(1, round(len(ordered) * fraction))
    return sum(ordered[:count])


def key_hit_ratio(read_rate: float, ttl_s: float, invalidate_rate: float = 0.0, fill_s: float = 0.0) -> float:
    """Steady-state hit ratio of one key (see the module docstring for the model)."""
    if read_rate <= 0 or ttl_s <= 0:
        return 0.0
    life = ttl_s + fill_s
    if invalidate_rate > 0:
        life = (1.0 - math.exp(-invalidate_rate * life)) / invalidate_rate
    hits_per_cycle = read_rate * life
    return hits_per_cycle / (1.0 + hits_per_cycle)


def expected_hit_ratio(
    probabilities: Sequence[float],
    read_rate: float,
    ttl_s: float,
    *,
    invalidate_rate: float = 0.0,
    fill_s: float = 0.0,
) -> float:
    """Read-weighted hit ratio over keys drawn with `probabilities`.

    `read_rate` is the total rate (req/s) of cacheable reads over all keys;
    `invalidate_rate` the total rate of writes that invalidate the drawn key,
    with the same key distribution.
    """
    if read_rate <= 0 or ttl_s <= 0:
        return 0.0
    hits = 0.0
    for p in probabilities:
        r = read_rate * p
        hits += r * key_hit_ratio(r, ttl_s, invalidate_rate * p, fill_s)
    return hits / read_rate


def profile_expected_hit_ratio(rate: float, ttl_s: float, fill_s: float = 0.05,
                               mix: dict[str, float] | None = None,
                               probabilities: Sequence[float] | None = None) -> float:
    """Expected hit ratio over the profile module's cacheable GETs (profile_get + profile_feed).

    `rate` is the module's total request rate (req/s, all endpoints); `fill_s` the
    time a miss takes to fill (the DB hold time, PROFILE_DB_MS, when the pool is
    not saturated).
    """
    mix = mix or PROFILE_MIX
    probs = list(probabilities) if probabilities is not None else zipf_probabilities()
    get_rate = rate * mix.get("profile_get", 0.0)
    feed_rate = rate * mix.get("profile_feed", 0.0)
    put_rate = rate * mix.get("profile_put", 0.0)
    reads = get_rate + feed_rate
    if reads <= 0:
        return 0.0
    get_h = expected_hit_ratio(probs, get_rate, ttl_s, invalidate_rate=put_rate, fill_s=fill_s)
    feed_h = expected_hit_ratio(probs, feed_rate, ttl_s, fill_s=fill_s)
    return (get_rate * get_h + feed_rate * feed_h) / reads
