"""The publish limiters: bounded in memory, however many users publish."""

from __future__ import annotations

from jupyter_iotcable.server.limits import BucketMap


def test_rest_rate_buckets_stay_bounded() -> None:
    buckets = BucketMap(rate=1.0, burst=2, max_keys=100)
    for i in range(1_000):
        assert buckets.allow(f"user{i}", now=0.0) is None
    assert len(buckets) == 100
    # A user over the limit is refused, and told when to retry.
    assert buckets.allow("ann", 0.0) is None
    assert buckets.allow("ann", 0.0) is None
    empty = buckets.allow("ann", 0.0)
    assert empty is not None and empty.retry_after() == 1.0
    # Buckets that have refilled are forgotten: they are the same as new ones.
    assert buckets.allow("ann", 10.0) is None
    assert len(buckets) == 1
