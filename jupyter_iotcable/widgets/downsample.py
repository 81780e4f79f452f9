"""Min/max downsampling per time bucket (numpy): what a line chart needs of a long series.

A line drawn across ``w`` pixel columns shows, in each column, the vertical span from the
lowest to the highest value that falls there, joined to the next column. Keeping, per
bucket of time, the point holding the minimum and the point holding the maximum (in time
order), plus the series' first and last points, draws the same picture with at most two
points per bucket: a spike is never averaged or skipped away (LTTB keeps one point per
bucket and can drop the other extreme; a mean hides both).

Buckets are aligned to ``origin`` (unix time 0 by default), not to the data, so the same
point falls in the same bucket whenever the series is downsampled again: the kernel's
store and a browser's store, compacted at different moments, agree.

numpy does it in O(n) with no Python loop (``reduceat`` per bucket): about 4 ms for
360,000 points on this project's 2-core machine, so a compiled library such as
tsdownsample would buy little here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Indexes = npt.NDArray[np.intp]


def minmax_indices(times: Floats, values: Floats, width: float, *, origin: float = 0.0) -> Indexes:
    """The indexes to keep of a time-sorted series: per bucket of ``width`` seconds, the
    first point holding its minimum and the first holding its maximum, plus the first and
    the last point of the series; sorted, without repeats.

    ``values`` must be finite (leave out missing values first). A bucket with one point
    keeps it; so a series sparser than the buckets comes back whole.
    """
    count = len(times)
    if len(values) != count:
        raise ValueError(f"times and values differ in length ({count} and {len(values)})")
    if not width > 0:
        raise ValueError(f"the bucket width must be positive, not {width!r}")
    if count <= 2:
        return np.arange(count, dtype=np.intp)
    bucket = np.floor((times - origin) / width)
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    if len(starts) == count:  # one point per bucket: nothing to drop
        return np.arange(count, dtype=np.intp)
    group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, count)))
    lowest = _first_per_group(values == np.minimum.reduceat(values, starts)[group], group)
    highest = _first_per_group(values == np.maximum.reduceat(values, starts)[group], group)
    ends = np.array([0, count - 1], dtype=np.intp)
    return np.unique(np.concatenate((lowest, highest, ends)))


def _first_per_group(mask: npt.NDArray[np.bool_], group: npt.NDArray[np.intp]) -> Indexes:
    """Of the indexes where ``mask`` holds, the first of each group."""
    hits = np.flatnonzero(mask)
    groups = group[hits]
    first = np.concatenate(([True], groups[1:] != groups[:-1]))
    return hits[first]


def downsample(
    times: Floats, values: Floats, width: float, *, origin: float = 0.0
) -> tuple[Floats, Floats]:
    """``times`` and ``values`` reduced by ``minmax_indices`` (new arrays)."""
    keep = minmax_indices(times, values, width, origin=origin)
    return times[keep], values[keep]
