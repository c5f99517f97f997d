"""A wall-clock time on a given day in a timezone, as one instant, across daylight-saving changes.

``datetime.combine(day, time, tzinfo=zone)`` alone is not an instant one can
trust on the two days a year the clock jumps: a time in the spring gap (02:30
in Europe/Berlin on the last Sunday of March) does not exist, and one in the
autumn overlap happens twice. An editor who says "08:00" (or "02:30") means one
moment: in a gap, the first instant after it (03:00 that day); in an overlap,
the first of the two.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["wall_clock"]

UTC = dt.UTC


def wall_clock(day: dt.date, time: dt.time, zone: dt.tzinfo) -> dt.datetime:
    """The instant ``time`` strikes on ``day`` in ``zone``: after a gap, the first of an overlap."""
    first = dt.datetime.combine(day, time, tzinfo=zone).replace(fold=0)  # the earlier offset
    naive = first.replace(tzinfo=None)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return first  # the time exists (fold=0 is the first of two in an overlap)
    # In a gap: fold=0 reads it with the offset before the jump (an instant after the jump),
    # fold=1 with the one after (an instant before it). The jump lies between: find it.
    late = int(first.timestamp())
    early = int(first.replace(fold=1).timestamp())
    early, late = min(early, late), max(early, late)
    offset = dt.datetime.fromtimestamp(late, zone).utcoffset()
    while late - early > 1:
        middle = (early + late) // 2
        if dt.datetime.fromtimestamp(middle, zone).utcoffset() == offset:
            late = middle
        else:
            early = middle
    return dt.datetime.fromtimestamp(late, zone)
