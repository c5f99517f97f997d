"""The release rules, one decision at a time: what is published, what is released, when to look again.

Each rule is checked on its own, with every other rule satisfied, so a rule
that stopped working cannot hide behind the next one.
"""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import run_digest, write_subscribers
from digest.errors import ReleaseError
from digest.newsletter.lint import lint_file
from digest.newsletter.model import Severity
from digest.newsletter.parse import ParseOptions
from digest.release.rules import (
    check_sendable,
    decide,
    digest_fits,
    is_history,
    lint_reports,
    published_issues,
    readiness,
    refusal,
    with_same_date_conflicts,
)
from digest.release.state import Approval, IssueRecord, RunState
from digest.send.ledger import LedgerTally

TZ = dt.timezone(dt.timedelta(hours=8))  # the site's timezone, Asia/Shanghai
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=TZ)
CHANGED = (NOW - dt.timedelta(hours=2)).isoformat()
MAILDIR = (
    '[email]\nfrom = "简报 <digest@news.example.org>"\ntransport = "maildir:maildir"\n'
    'unsubscribe_url = "https://news.example.org/unsubscribe"\n'
)

ISSUE = """\
# 简报 ({date})：{headline}

## 论文

- [论文甲 | 某媒体](https://papers.example.org/{date}/a)
摘要：甲。
"""
DRAFT = "---\ndraft: true\n---\n" + ISSUE
WITH_ERROR = ISSUE + "\n- [论文乙 | 某媒体]()\n摘要：乙。\n"  # an empty link target: a lint error
FATAL = "# 简报 ({date})：<标题>\n## 论文\n- [a](https://a.org)\n"  # a placeholder title

NOT_SENT = LedgerTally(1, {})
INTERRUPTED = LedgerTally(1, {"sent": 1}, exists=True)
MAILED = LedgerTally(1, {"sent": 3}, finished=True, exists=True)


def configure(site, mode="auto", settle=30):
    site.write_config(MAILDIR + f'[release]\nmode = "{mode}"\nsettle_minutes = {settle}\n')


def report_of(site, stem, template=ISSUE, date=None, headline="新一期"):
    path = site.write_issue(f"{stem}.md", template.format(date=date or stem, headline=headline))
    return lint_file(path, ParseOptions.from_config(site.config))


def record_for(report, **changes):
    """What the state holds for a file first seen and last changed two hours before NOW."""
    return IssueRecord(report.sha256, CHANGED, CHANGED, **changes)


def approved(report, force=False):
    return record_for(report, approval=Approval(report.sha256, CHANGED, force))


def status(site, report, record=None, ledger=NOT_SENT, now=NOW):
    return decide(report, record or record_for(report), ledger, site.config, now)


# -- published ---------------------------------------------------------------------------------


def test_an_issue_dated_today_in_the_site_timezone_is_published(site):
    configure(site)
    report = report_of(site, "2026-11-22")
    just_after_midnight = dt.datetime(2026, 11, 21, 16, 0, 1, tzinfo=dt.UTC)  # 00:00:01 in Shanghai
    ready = readiness(report.issue, just_after_midnight)
    assert (ready.published, ready.reason, ready.wake_at) == (True, "published", None)
    assert not readiness(report.issue, just_after_midnight - dt.timedelta(seconds=2)).published


def test_a_scheduled_issue_wakes_digest_at_midnight_of_its_date(site):
    configure(site)
    report = report_of(site, "2026-11-25")
    midnight = dt.datetime(2026, 11, 25, tzinfo=TZ)
    ready = readiness(report.issue, NOW)
    assert (ready.published, ready.reason, ready.wake_at) == (False, "scheduled for 2026-11-25", midnight)
    result = status(site, report, approved(report))
    assert (result.published, result.released, result.release) == (False, False, "not published")
    assert result.wake_at == midnight  # the idle snapshot looks again then, not never


@pytest.mark.parametrize(
    ("template", "reason"),
    [(DRAFT, "draft"), (FATAL, "not an issue yet (fatal lint findings)")],
    ids=["draft", "fatal"],
)
def test_drafts_and_unfinished_files_are_not_published_even_when_approved(site, template, reason):
    configure(site)
    report = report_of(site, "2026-11-20", template)
    record = approved(report)
    result = status(site, report, record)
    assert (result.published, result.publication, result.released) == (False, reason, False)
    assert result.release == "not published" and not result.should_send and result.wake_at is None


def test_published_issues_newest_first_without_drafts_or_future_ones(site):
    configure(site)
    reports = [
        report_of(site, "2026-11-01"),
        report_of(site, "2026-11-20-b", date="2026-11-20"),
        report_of(site, "2026-11-20-a", date="2026-11-20"),
        report_of(site, "2026-11-21", DRAFT),
        report_of(site, "2026-11-30"),
        report_of(site, "2026-10-01"),
    ]
    chosen = published_issues([r.issue for r in reports], NOW)
    assert [i.stem for i in chosen] == ["2026-11-20-b", "2026-11-20-a", "2026-11-01", "2026-10-01"]


# -- released ----------------------------------------------------------------------------------


def test_an_issue_mailed_to_the_end_is_never_released_again(site):
    configure(site)
    report = report_of(site, "2026-11-20")
    result = status(site, report, approved(report), ledger=MAILED)
    assert (result.released, result.release, result.should_send) == (False, "mailed", False)


def test_an_approved_issue_is_released_and_sent(site):
    configure(site, mode="manual")
    report = report_of(site, "2026-11-20")
    result = status(site, report, approved(report))
    assert (result.published, result.released, result.release, result.should_send) == (
        True,
        True,
        "approved",
        True,
    )


def test_an_approval_of_an_older_version_does_not_release_the_new_one(site):
    configure(site, mode="manual")
    report = report_of(site, "2026-11-20")
    record = record_for(report, approval=Approval("0" * 64, CHANGED))
    result = status(site, report, record)
    assert (result.released, result.release) == (
        False,
        "changed since it was approved: digest approve it again",
    )


def test_a_held_issue_is_not_released_even_when_approved(site):
    configure(site, mode="manual")
    report = report_of(site, "2026-11-20")
    record = record_for(report, approval=Approval(report.sha256, CHANGED), held=True)
    result = status(site, report, record)
    assert (result.released, result.release) == (False, "held (digest approve to release it)")


def test_an_issue_mailed_under_another_date_is_not_released(site):
    configure(site, mode="manual")
    report = report_of(site, "2026-11-20", date="2026-11-19")
    result = status(
        site, report, record_for(report, approval=Approval(report.sha256, CHANGED), mailed="2026-11-20")
    )
    assert not result.released
    assert result.release.startswith("already mailed as 2026-11-20; its date is now 2026-11-19")


def test_an_issue_mailed_under_its_own_date_resumes_as_approved(site):
    configure(site, mode="manual")
    report = report_of(site, "2026-11-20")
    record = record_for(report, approval=Approval(report.sha256, CHANGED), mailed="2026-11-20")
    result = status(site, report, record, ledger=INTERRUPTED)
    assert (result.released, result.release) == (True, "approved")
    # With its ledger deleted, the state's memory of the mailing keeps it from going out again.
    gone = status(site, report, record)
    assert (gone.released, gone.release) == (
        False,
        "mailed; its delivery ledger is gone (digest send 2026-11-20 --resend mails it again on purpose)",
    )


def test_an_interrupted_send_is_released_without_approval(site):
    configure(site, mode="manual")
    report = report_of(site, "2026-11-20")
    result = status(site, report, ledger=INTERRUPTED)
    assert (result.released, result.release, result.should_send) == (True, "interrupted send", True)


def test_manual_mode_waits_for_approval(site):
    configure(site, mode="manual", settle=0)
    report = report_of(site, "2026-11-20")
    result = status(site, report)
    assert (result.released, result.release) == (False, "waiting for approval: digest approve 2026-11-20")


def test_auto_mode_never_mails_history(site):
    configure(site)
    report = report_of(site, "2026-11-20")
    result = status(site, report, record_for(report, history=True))
    assert not result.released
    assert result.release == "history: not mailed automatically (digest send 2026-11-20 mails it)"


def test_auto_mode_holds_an_issue_with_lint_errors(site):
    configure(site)
    report = report_of(site, "2026-11-20", WITH_ERROR)
    result = status(site, report)
    assert (result.released, result.release) == (False, "lint errors: fix them (or digest approve --force)")


def test_auto_mode_releases_once_settled_and_says_when_until_then(site):
    configure(site, settle=150)  # changed at 10:00: settled at 12:30
    report = report_of(site, "2026-11-20")
    settled = NOW + dt.timedelta(minutes=30)
    waiting = status(site, report)
    assert (waiting.released, waiting.release) == (False, "settling until 2026-11-22 12:30")
    assert waiting.wake_at == settled
    almost = status(site, report, now=settled - dt.timedelta(seconds=1))
    assert not almost.released and almost.wake_at == settled
    due = status(site, report, now=settled)
    assert (due.released, due.release, due.wake_at) == (True, "settled", None)


# -- same-date files ---------------------------------------------------------------------------


def test_two_files_with_one_date_hold_each_other_and_say_which(site):
    configure(site, settle=0)
    first, copy = report_of(site, "2026-11-20"), report_of(site, "2026-11-20-copy", date="2026-11-20")
    alone = report_of(site, "2026-11-21")
    statuses = with_same_date_conflicts([status(site, first), status(site, copy), status(site, alone)])
    assert [(s.stem, s.released, s.held_by_twin) for s in statuses] == [
        ("2026-11-20", False, True),
        ("2026-11-20-copy", False, True),
        ("2026-11-21", True, False),
    ]
    assert statuses[0].release == (
        "2026-11-20-copy is dated 2026-11-20 too: keep one file per issue (digest send mails one on purpose)"
    )
    assert statuses[1].release.startswith("2026-11-20 is dated 2026-11-20 too")


def test_a_draft_with_the_same_date_does_not_hold_the_finished_issue(site):
    configure(site, settle=0)
    finished, draft = (
        report_of(site, "2026-11-20"),
        report_of(site, "2026-11-20-next", DRAFT, date="2026-11-20"),
    )
    statuses = with_same_date_conflicts([status(site, finished), status(site, draft)])
    assert [(s.stem, s.released, s.held_by_twin) for s in statuses] == [
        ("2026-11-20", True, False),
        ("2026-11-20-next", False, False),
    ]
    assert statuses[0].release == "settled"


def test_a_twin_of_a_mailed_issue_changes_nothing_for_the_mailed_one(site):
    configure(site, settle=0)
    mailed, copy = report_of(site, "2026-11-20"), report_of(site, "2026-11-20-copy", date="2026-11-20")
    statuses = with_same_date_conflicts(
        [status(site, mailed, ledger=MAILED), status(site, copy, ledger=MAILED)]
    )
    assert [(s.released, s.release, s.held_by_twin) for s in statuses] == [(False, "mailed", False)] * 2


def test_a_held_twin_that_was_not_released_is_not_reported_as_held_by_its_twin(site):
    configure(site, mode="manual")
    first, copy = report_of(site, "2026-11-20"), report_of(site, "2026-11-20-copy", date="2026-11-20")
    statuses = with_same_date_conflicts([status(site, first, approved(first)), status(site, copy)])
    assert [(s.released, s.held_by_twin) for s in statuses] == [(False, True), (False, False)]


# -- history -----------------------------------------------------------------------------------


def test_history_with_since_is_what_is_dated_before_it(site):
    site.write_config("[release]\nsince = 2026-10-10\n")
    config, state = site.config, RunState(initialized=NOW.isoformat())
    assert is_history(dt.date(2026, 10, 9), config, state, first_sight=False)
    assert not is_history(dt.date(2026, 10, 10), config, state, first_sight=True)
    assert not is_history(None, config, state, first_sight=True)


def test_history_without_since_is_what_was_there_first_or_is_dated_before_the_first_run(site):
    site.write_config()
    config = site.config
    state = RunState(
        initialized=dt.datetime(2026, 11, 21, 16, 30, tzinfo=dt.UTC).isoformat()
    )  # 11-22 in Shanghai
    assert is_history(dt.date(2026, 11, 23), config, state, first_sight=True)
    assert is_history(dt.date(2026, 11, 21), config, state, first_sight=False)
    assert not is_history(dt.date(2026, 11, 22), config, state, first_sight=False)
    assert not is_history(None, config, state, first_sight=False)


# -- what the editor may do by hand ------------------------------------------------------------


def test_mailing_a_future_issue_needs_force_but_approving_it_does_not(site):
    configure(site)
    issue = report_of(site, "2026-11-25").issue
    problem = refusal(issue, NOW, force=False, action="mail")
    assert problem == "is scheduled for 2026-11-25, in the future; wait, or mail it anyway with --force"
    assert refusal(issue, NOW, force=True, action="mail") is None
    assert refusal(issue, NOW, force=False, action="approve") is None
    with pytest.raises(ReleaseError, match="in the future"):
        check_sendable(issue, NOW)
    check_sendable(issue, NOW, force=True)


def test_lint_errors_need_force_and_the_refusal_names_the_first(site):
    configure(site)
    issue = report_of(site, "2026-11-20", WITH_ERROR + "\n- [论文丙 | 某媒体]()\n摘要：丙。\n").issue
    problem = refusal(issue, NOW, force=False, action="approve")
    assert problem is not None
    assert problem.startswith("has 2 lint error(s), e.g. line 8: ")
    assert problem.endswith("; fix them, or approve it anyway with --force")
    assert refusal(issue, NOW, force=True, action="mail") is None
    clean_but_warned = report_of(site, "2026-11-21", ISSUE.replace("## 论文", "## 观点")).issue
    assert clean_but_warned.findings and refusal(clean_but_warned, NOW, force=False, action="mail") is None


@pytest.mark.parametrize(
    ("template", "problem"),
    [(DRAFT, "is a draft: set draft: false"), (FATAL, "is not an issue yet (fatal lint findings)")],
    ids=["draft", "fatal"],
)
def test_drafts_and_unfinished_files_are_never_mailed_even_with_force(site, template, problem):
    configure(site)
    report = report_of(site, "2026-11-20", template)
    assert refusal(report.issue, NOW, force=True, action="mail").startswith(problem)


def test_digest_send_refuses_a_future_issue_without_force_and_mails_it_with_force(site, run_env):
    """`digest send` as the editor types it, today's date taken from the clock."""
    configure(site, mode="manual")
    write_subscribers(site.root / "subscribers.csv", [("a@example.com", "", "", "active", "")])
    future = (dt.datetime.now(TZ) + dt.timedelta(days=30)).date().isoformat()
    site.write_issue(f"{future}.md", ISSUE.format(date=future, headline="下个月"))
    maildir = site.root / "maildir" / "new"
    refused = run_digest(["send", future, "--config", str(site.config_path)], run_env)
    assert refused.returncode == 1
    assert f"is scheduled for {future}, in the future; wait, or mail it anyway with --force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not maildir.exists() or not list(maildir.iterdir())
    assert not (site.root / "state" / "ledger" / f"{future}.jsonl").exists()
    forced = run_digest(["send", future, "--force", "--config", str(site.config_path)], run_env)
    assert forced.returncode == 0, forced.stderr
    assert len(list(maildir.iterdir())) == 1


# -- the send hour ------------------------------------------------------------------------------

DAY = dt.datetime(2026, 11, 22, 0, 0, tzinfo=TZ)


def configure_hour(site, mode="auto", send_at="08:00"):
    site.write_config(MAILDIR + f'[release]\nmode = "{mode}"\nsettle_minutes = 0\nsend_at = "{send_at}"\n')


def at(hours: float) -> dt.datetime:
    return DAY + dt.timedelta(hours=hours)


def changed_at_six(report, approved_at: float | None = None) -> IssueRecord:
    """First seen and last changed at 06:00; approved ``approved_at`` hours into the day, if given."""
    approval = Approval(report.sha256, at(approved_at).isoformat()) if approved_at is not None else None
    return IssueRecord(report.sha256, at(6).isoformat(), at(6).isoformat(), approval=approval)


def test_a_settled_issue_waits_for_its_send_hour_and_goes_at_it(site):
    configure_hour(site)
    report = report_of(site, "2026-11-22")
    record = changed_at_six(report)
    before = status(site, report, record, now=at(7.5))
    assert (before.released, before.wake_at) == (False, at(8))
    assert before.release.startswith("settled; scheduled for 2026-11-22 08:00")
    assert (
        status(site, report, record, now=at(8)).released,
        status(site, report, record, now=at(8)).release,
    ) == (
        True,
        "settled",
    )


def test_an_approval_counts_from_when_it_was_given(site):
    """Approved at 09:00, after today's send hour: it goes at tomorrow's, not at once."""
    configure_hour(site, mode="manual")
    report = report_of(site, "2026-11-22")
    record = changed_at_six(report, approved_at=9)
    result = status(site, report, record, now=at(10))
    assert (result.released, result.wake_at) == (False, at(32))
    assert result.release == "approved; scheduled for 2026-11-23 08:00 +08:00"


def test_a_send_begun_never_waits_for_the_send_hour(site):
    configure_hour(site, mode="manual")
    report = report_of(site, "2026-11-22")
    record = changed_at_six(report, approved_at=9)
    assert (status(site, report, record, ledger=INTERRUPTED, now=at(10)).released) is True
    unapproved = changed_at_six(report)
    resumed = status(site, report, unapproved, ledger=INTERRUPTED, now=at(7))
    assert (resumed.released, resumed.release) == (True, "interrupted send")


def test_a_digest_too_large_for_the_mail_limit_is_a_lint_error(site):
    configure(site)
    site.write_config(MAILDIR.replace("[email]\n", "[email]\nmax_html_bytes = 2000\n"))
    report = report_of(site, "2026-11-20")
    finding = digest_fits(site.config, report.issue, report.path)
    assert (finding.code, finding.severity) == ("digest-too-large", Severity.ERROR)
    configure(site)
    assert digest_fits(site.config, report.issue, report.path) is None


def test_lint_reads_the_folder_as_status_does_and_named_files_where_they_are(site, tmp_path):
    configure(site)
    report_of(site, "2026-11-20")
    draft = site.root / "drafts"
    draft.mkdir()
    (draft / "2026-11-27.md").write_text(ISSUE.format(date="2026-11-27", headline="下一期"), encoding="utf-8")
    folder = lint_reports(site.config, [])
    assert [r.path.name for r in folder] == ["2026-11-20.md"]  # a draft waiting in drafts/ is not linted
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text(WITH_ERROR.format(date="2026-11-21", headline="别处"), encoding="utf-8")
    named = lint_reports(site.config, [elsewhere, draft / "2026-11-27.md"])
    assert [r.path for r in named] == [elsewhere, draft / "2026-11-27.md"]
    assert named[0].blocking and not named[1].blocking
