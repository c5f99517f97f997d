"""The commands: each loads the config, calls one library function and prints its result."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digest.config import Config, default_config, find_config_path, load_config
from digest.errors import DigestError

__all__ = [
    "cmd_approve",
    "cmd_bounces",
    "cmd_feeds",
    "cmd_hold",
    "cmd_init",
    "cmd_lint",
    "cmd_parse",
    "cmd_preview",
    "cmd_run",
    "cmd_send",
    "cmd_serve",
    "cmd_status",
    "cmd_subscribers",
    "cmd_watch",
    "error",
]

log = logging.getLogger("digest")


def error(message: str) -> None:
    """One line on stderr, as every error digest reports."""
    print(f"digest: {message}", file=sys.stderr)


def _config(args: argparse.Namespace) -> Config:
    return _language_noted(load_config(args.config), args)


def _config_or_default(args: argparse.Namespace) -> Config:
    """parse and lint work on loose files too: without any config they use the defaults."""
    if find_config_path(args.config) is None:
        return default_config()
    return _language_noted(load_config(args.config), args)


def _language_noted(config: Config, args: argparse.Namespace) -> Config:
    """One warning when digest has no catalog for the newsletter's language (not with -q)."""
    from digest.i18n import missing_catalog

    note = missing_catalog(config.site.language)
    if note and not getattr(args, "quiet", 0):
        error(f"warning: {note}")
    return config


def cmd_init(args: argparse.Namespace) -> int:
    from digest.config import CONFIG_NAME
    from digest.newsletter.starter import init_newsletter

    target = Path(args.config or os.environ.get("DIGEST_CONFIG") or CONFIG_NAME)
    report = init_newsletter(
        target,
        Path(args.folder) if args.folder else None,
        title=args.title,
        base_url=args.base_url,
        language=args.language,
    )
    for line in report.lines:
        print(line)
    return 0


def cmd_parse(args: argparse.Namespace) -> int:
    from digest.errors import ParseError
    from digest.newsletter.catalog import parse_options
    from digest.newsletter.parse import read_issue
    from digest.newsletter.serialize import issue_to_dict

    options = parse_options(_config_or_default(args))
    failed = 0
    for name in args.files:
        try:
            issue = read_issue(Path(name), options)
        except ParseError as exc:
            error(str(exc))
            failed += 1
            continue
        if args.json:
            print(json.dumps(issue_to_dict(issue), ensure_ascii=False), flush=True)
        else:
            items = sum(len(s.items) for s in issue.sections)
            print(f"{name}: {issue.date} {issue.full_title} ({items} items, {len(issue.findings)} findings)")
    return 1 if failed else 0


def cmd_lint(args: argparse.Namespace) -> int:
    from digest.i18n import gettext_for, join_list
    from digest.newsletter.discover import Survey, skipped_lines, survey
    from digest.newsletter.lint import count_by_severity, lint_lines
    from digest.release.rules import lint_reports

    config = _config_or_default(args)
    given = Survey(tuple(Path(f) for f in args.files), ())
    found = given if args.files else survey(config.paths.issues)
    reports = lint_reports(config, list(given.issues))
    findings = [f for report in reports for f in report.findings]
    language = config.site.language
    for line in lint_lines(reports, language):
        print(line)
    print(*skipped_lines(found.skipped, language), sep="\n", end="\n" if found.skipped else "")
    counts = count_by_severity(findings)
    _ = gettext_for(language)
    summary = join_list([f"{n} {severity.word(language)}" for severity, n in counts.items()], language)
    print(_("%(files)s file(s): %(summary)s", files=len(reports), summary=summary), file=sys.stderr)
    return 1 if any(report.blocking for report in reports) else 0


def cmd_feeds(args: argparse.Namespace) -> int:
    from digest.feeds.build import describe
    from digest.pipeline import build_feeds_now

    config = _config(args)
    build = build_feeds_now(config)
    if build.warning is not None:
        error(f"warning: {build.warning}")
    print(describe(build))
    for path in build.written:
        print(f"  wrote {path}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from digest.newsletter.catalog import load_issue, now_in
    from digest.release.rules import RELEASE_CHECKS
    from digest.web.preview import Preview, PreviewServer, write_preview

    config = _config(args)
    issue = load_issue(config, args.issue, RELEASE_CHECKS)
    preview = write_preview(config, issue, now_in(config))
    print(preview.report, end="")
    print(f"wrote {preview.directory}/email.html, email.txt, email.eml, report.txt")
    if args.to:
        from digest.send.delivery import send_test_copy

        print(send_test_copy(config, issue, args.to, now_in(config)))
    if args.serve:

        def rebuild() -> Preview:
            return write_preview(config, load_issue(config, args.issue), now_in(config))

        server = _listen(
            lambda: PreviewServer(preview, args.host, args.port, rebuild=rebuild, config=config),
            args.host,
            args.port,
            "--port",
        )
        print(f"previewing at {server.url} (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from digest.pipeline import send

    config = _config(args)
    report = send(
        config, args.issue, resend=args.resend, force=args.force, progress=False if args.no_progress else None
    )
    print(report.summary())
    for line in report.list_problems:
        error(f"{line} (this line is skipped)")
    if report.list_problems:
        skipped = len(report.list_problems)
        error(f"{skipped} line(s) of {config.paths.subscribers} were skipped; fix them and send again")
        return 1
    return 75 if report.deferred else 0


def cmd_subscribers(args: argparse.Namespace) -> int:
    from digest.newsletter.catalog import now_in
    from digest.subscribers import changes, model, reading

    config = _config(args)
    path, known = config.paths.subscribers, config.feeds.slugs
    today = now_in(config).date()
    action = args.action
    changes.fold_journal(path, known)  # changes made meanwhile (the web, bounces) into the file first
    if action == "add":
        sections = model.parse_sections(args.sections or "", known)
        added = changes.add_subscriber(
            path, known, args.email, name=args.name or "", sections=sections, today=today
        )
        changes.fold_journal(path, known)
        print(f"added {added.email}")
    elif action == "remove":
        removed = changes.remove_subscriber(path, known, args.email, purge=args.purge)
        changes.fold_journal(path, known)
        print(f"{'erased' if args.purge else 'unsubscribed'} {removed.email}")
    elif action == "import":
        result = changes.import_subscribers(path, known, Path(args.file), today=today)
        for problem in result.problems:
            error(f"{problem.format(Path(args.file))} (skipped)")
        print(f"imported {len(result.added)}, {len(result.present)} already on the list")
        return 1 if result.problems else 0
    else:
        if not path.is_file():
            raise DigestError(
                f"{path}: there is no subscriber list here yet (digest subscribers add creates it)"
            )
        listing = reading.read_subscribers(path, known)
        for problem in listing.problems:
            error(f"{problem.format(path)} (skipped)")
        statuses = None if args.status == "all" else {args.status}
        if action == "export":
            sys.stdout.write(model.export_csv(listing.subscribers, statuses))
        else:
            shown = [s for s in listing.subscribers if statuses is None or s.status in statuses]
            for s in shown:
                chosen = ";".join(sorted(s.sections)) or "all"
                if args.json:
                    record = {"email": s.email, "name": s.name, "sections": sorted(s.sections)}
                    print(json.dumps({**record, "status": s.status, "since": s.since}, ensure_ascii=False))
                else:
                    print(f"{s.email}\t{s.name}\t{chosen}\t{s.status}\t{s.since}")
            print(f"{len(shown)} subscriber(s)", file=sys.stderr)
        return 1 if listing.problems else 0
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from digest.pipeline import run_once

    report = run_once(_config(args))
    if not (args.quiet and report.idle):
        for line in report.lines:
            print(line)
    return 1 if report.failed else 0


def cmd_watch(args: argparse.Namespace) -> int:
    import time

    from digest.pipeline import run_once

    config = _config(args)
    log.info("watching %s every %gs (Ctrl-C to stop)", config.paths.issues, args.interval)
    while True:
        report = run_once(config)
        for line in [] if report.idle else report.lines:
            (log.error if report.failed else log.info)("%s", line)
        time.sleep(args.interval)


def cmd_bounces(args: argparse.Namespace) -> int:
    from digest.bounces.record import read_mailbox

    config = _config(args)
    if not config.bounces.mailbox:
        raise DigestError(
            "set [bounces] mailbox (maildir:PATH or imaps://user@host/INBOX) first", path=config.path
        )
    lines = read_mailbox(config, dry_run=args.dry_run)
    for line in lines:
        print(line)
    if not lines:
        print("no new mail in the bounce mailbox")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from digest.release.status import status_records, status_table

    config = _config(args)
    if args.json:
        for record in status_records(config):
            print(json.dumps(record, ensure_ascii=False))
        return 0
    print(status_table(config))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from digest.release.tracking import approve

    print(approve(_config(args), args.issue, force=args.force))
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    from digest.release.tracking import approve

    print(approve(_config(args), args.issue, hold=True))
    return 0


def _listen(make: Callable[[], Any], host: str, port: int, key: str) -> Any:
    """Start a server; a port in use or a bad host is one line naming the address and how to change it."""
    try:
        return make()
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DigestError(f"cannot listen on {host}:{port}: {reason} (choose another with {key})") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from digest.web.server import SubscriptionServer

    config = _config(args)
    host = config.serve.host if args.host is None else args.host
    port = config.serve.port if args.port is None else args.port
    key = "--port or [serve] port in " + str(config.path)
    server = _listen(lambda: SubscriptionServer(config, args.host, args.port), host, port, key)
    log.info("serving unsubscribe, subscribe, confirm and preferences at %s (Ctrl-C to stop)", server.url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
