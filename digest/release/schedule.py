"""The send hour: when a released issue is mailed (``[release] send_at``, front matter ``send_at``).

Release says *whether* an issue may be mailed; the send hour says *when*. A
released issue waits for the first send hour at or after the moment it was
released (approved, or settled) and published (its date has come), so an issue
approved at 10:00 for an 08:00 send hour goes out at 08:00 the next (allowed)
day, and a cron that was down at 08:00 mails it on its first run after. An
issue's own front matter ``send_at`` names the moment outright. Wall-clock
times are read with :func:`~digest.newsletter.wallclock.wall_clock`, so a send
hour in the spring gap fires just after it and one in the autumn overlap once.
``digest send`` ignores all of this: it mails at once, on purpose.
"""

from __future__ import annotations

import datetime as dt

from digest.config import Config, SendHour
from digest.newsletter.model import Issue
from digest.newsletter.wallclock import wall_clock

__all__ = ["describe_moment", "next_send_hour", "send_time"]

UTC = dt.UTC


def next_send_hour(hour: SendHour, after: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The first time the send hour strikes in ``zone`` at or after ``after``."""
    day = after.astimezone(zone).date() - dt.timedelta(days=1)  # the day before: offsets differ by hours
    for offset in range(9):
        candidate = day + dt.timedelta(days=offset)
        if hour.weekdays and candidate.weekday() not in hour.weekdays:
            continue
        moment = wall_clock(candidate, hour.time, zone)
        if moment.astimezone(UTC) >= after.astimezone(UTC):  # same-zone comparison ignores the fold
            return moment
    raise AssertionError("a send hour strikes at least once a week")  # pragma: no cover


def send_time(issue: Issue, config: Config, released_at: dt.datetime) -> dt.datetime | None:
    """When an issue released at ``released_at`` is mailed; None when at once (no send hour)."""
    zone = config.site.timezone
    if issue.send_at is not None:
        return issue.send_at.astimezone(zone)
    if config.release.send_at is None:
        return None
    published = dt.datetime.combine(issue.date, dt.time(0, 0), tzinfo=zone)
    start = max(released_at.astimezone(UTC), published.astimezone(UTC))
    return next_send_hour(config.release.send_at, start, zone)


def describe_moment(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """``2026-12-03 08:00 +08:00``: the site's wall clock with its offset, as status shows it."""
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.isoformat()[-6:]}"
