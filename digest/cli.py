"""The ``digest`` command line: a thin layer over the library.

Each command is a few lines that load the config, call one library function and
print its result; tests call the same functions directly. Every error is one
line on stderr (``digest: PATH:LINE: message``) and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from digest import __version__
from digest.config import Config, default_config, find_config_path, load_config
from digest.errors import DigestError

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except DigestError as exc:
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: never show a traceback
        if os.environ.get("DIGEST_DEBUG"):
            raise
        _error(f"internal error: {exc.__class__.__name__}: {exc} (set DIGEST_DEBUG=1 for details)")
        return 70


def _error(message: str) -> None:
    print(f"digest: {message}", file=sys.stderr)


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _config_or_default(args: argparse.Namespace) -> Config:
    """parse and lint work on loose files too: without any config they use the defaults."""
    if find_config_path(args.config) is None:
        return default_config()
    return load_config(args.config)


# -- commands -------------------------------------------------------------------------------


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
            _error(str(exc))
            failed += 1
            continue
        if args.json:
            print(json.dumps(issue_to_dict(issue), ensure_ascii=False), flush=True)
        else:
            items = sum(len(s.items) for s in issue.sections)
            print(f"{name}: {issue.date} {issue.full_title} ({items} items, {len(issue.findings)} findings)")
    return 1 if failed else 0


def cmd_lint(args: argparse.Namespace) -> int:
    from digest.newsletter.catalog import parse_options
    from digest.newsletter.discover import issue_paths
    from digest.newsletter.lint import count_by_severity, lint_files, lint_lines

    config = _config_or_default(args)
    paths = [Path(f) for f in args.files] or issue_paths(config.paths.issues)
    reports = lint_files(paths, parse_options(config))
    findings = [f for report in reports for f in report.findings]
    for line in lint_lines(reports):
        print(line)
    counts = count_by_severity(findings)
    summary = ", ".join(f"{n} {severity}" for severity, n in counts.items())
    print(f"{len(reports)} file(s): {summary}", file=sys.stderr)
    return 1 if any(report.blocking for report in reports) else 0


def cmd_feeds(args: argparse.Namespace) -> int:
    from digest.feeds.build import describe
    from digest.pipeline import build_feeds_now

    config = _config(args)
    build = build_feeds_now(config)
    if build.warning is not None:
        _error(f"warning: {build.warning}")
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
        _error(f"{line} (this line is skipped)")
    if report.list_problems:
        skipped = len(report.list_problems)
        _error(f"{skipped} line(s) of {config.paths.subscribers} were skipped; fix them and send again")
        return 1
    return 75 if report.deferred else 0


def cmd_subscribers(args: argparse.Namespace) -> int:
    from digest.newsletter.catalog import now_in
    from digest.send import subscribers as subs

    config = _config(args)
    path, known = config.paths.subscribers, config.feeds.slugs
    today = now_in(config).date()
    action = args.action
    subs.fold_journal(path, known)  # changes made meanwhile (the web, bounces) into the file first
    if action == "add":
        sections = subs.parse_sections(args.sections or "", known)
        added = subs.add_subscriber(
            path, known, args.email, name=args.name or "", sections=sections, today=today
        )
        subs.fold_journal(path, known)
        print(f"added {added.email}")
    elif action == "remove":
        removed = subs.remove_subscriber(path, known, args.email, purge=args.purge)
        subs.fold_journal(path, known)
        print(f"{'erased' if args.purge else 'unsubscribed'} {removed.email}")
    elif action == "import":
        result = subs.import_subscribers(path, known, Path(args.file), today=today)
        for problem in result.problems:
            _error(f"{problem.format(Path(args.file))} (skipped)")
        print(f"imported {len(result.added)}, {len(result.present)} already on the list")
        return 1 if result.problems else 0
    else:
        if not path.is_file():
            raise DigestError(
                f"{path}: there is no subscriber list here yet (digest subscribers add creates it)"
            )
        listing = subs.read_subscribers(path, known)
        for problem in listing.problems:
            _error(f"{problem.format(path)} (skipped)")
        statuses = None if args.status == "all" else {args.status}
        if action == "export":
            sys.stdout.write(subs.export_csv(listing.subscribers, statuses))
        else:
            shown = [s for s in listing.subscribers if statuses is None or s.status in statuses]
            for s in shown:
                chosen = ";".join(sorted(s.sections)) or "all"
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
    print(f"watching {config.paths.issues} every {args.interval:g}s (Ctrl-C to stop)", flush=True)
    while True:
        report = run_once(config)
        if not report.idle:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            for line in report.lines:
                print(f"{stamp} {line}", flush=True)
        time.sleep(args.interval)


def cmd_bounces(args: argparse.Namespace) -> int:
    from digest.send.bouncelog import read_mailbox

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
    from digest.release.status import status_table

    print(status_table(_config(args)))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from digest.release.tracking import approve

    print(approve(_config(args), args.issue, force=args.force))
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    from digest.release.tracking import approve

    print(approve(_config(args), args.issue, hold=True))
    return 0


def _listen(make: Callable[[], Any], host: str | None, port: int | None) -> Any:
    """Start a server; a port in use or an unknown host is one clear line, not a traceback."""
    try:
        return make()
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        where = f"{host or 'the configured address'}:{'' if port is None else port}"
        raise DigestError(f"cannot listen on {where}: {reason}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from digest.web.server import SubscriptionServer

    config = _config(args)
    server = _listen(lambda: SubscriptionServer(config, args.host, args.port), args.host, args.port)
    print(
        f"serving unsubscribe, subscribe, confirm and preferences at {server.url} (Ctrl-C to stop)",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


# -- the parser -------------------------------------------------------------------------------

_COMMANDS: list[tuple[str, Handler, str, str]] = [
    (
        "run",
        cmd_run,
        "One idempotent pass for cron: feeds, previews, and mail for released issues.",
        "example: digest run            # after a git pull, or every minute from cron\n"
        "         digest run --quiet    # silent when there is nothing to do",
    ),
    (
        "status",
        cmd_status,
        "A table of issues: date, headline, items, lint, published, approved, sent/failed/total.",
        "example: digest status",
    ),
    (
        "bounces",
        cmd_bounces,
        "Read [bounces] mailbox: bounces, complaints and unsubscribes by mail change the list.",
        "example: digest bounces --dry-run    # what would change, and why, per message",
    ),
    (
        "approve",
        cmd_approve,
        "Release an issue for mailing (manual mode); refuses lint errors unless --force.",
        "example: digest approve 2026-11-01",
    ),
    (
        "hold",
        cmd_hold,
        "Take an approval back: the issue is not mailed until approved again.",
        "example: digest hold 2026-11-01",
    ),
    (
        "watch",
        cmd_watch,
        "Run `digest run` in a loop, for a long-running service instead of cron.",
        "example: digest watch --interval 60",
    ),
    (
        "parse",
        cmd_parse,
        "Parse issue files and print what was read.",
        "example: digest parse examples/issues/*.md --json | jq .headline",
    ),
    (
        "feeds",
        cmd_feeds,
        "Build Atom and RSS feeds (whole newsletter and per section) into [paths] feeds.",
        "example: digest feeds && ls feeds/    # atom.xml rss.xml papers.atom.xml ...",
    ),
    (
        "preview",
        cmd_preview,
        "Write the digest of one issue as a subscriber gets it, with a report; optionally serve or send it.",
        "example: digest preview 2026-11-01            # writes var/previews/2026-11-01/\n"
        "         digest preview 2026-11-01 --serve    # open the printed URL\n"
        "         digest preview 2026-11-01 --to me@example.org",
    ),
    (
        "send",
        cmd_send,
        "Mail one issue to every active subscriber not yet sent (resumes an interrupted send).",
        "example: digest send 2026-11-01\n"
        "         digest send 2026-11-01 --resend    # everyone again, on purpose",
    ),
    (
        "subscribers",
        cmd_subscribers,
        "Add, remove, list, import or export subscribers (safe while a send runs).",
        "example: digest subscribers add reader@example.org --name 读者 --sections papers,projects\n"
        "         digest subscribers remove reader@example.org\n"
        "         digest subscribers export --status active > active.csv",
    ),
    (
        "serve",
        cmd_serve,
        "Serve one-click unsubscribe, double opt-in subscribe and section preferences (behind a proxy).",
        "example: digest serve --port 8025    # then proxy https://example.org/digest/ to it",
    ),
    (
        "lint",
        cmd_lint,
        "Check issue files; exit 1 on any fatal finding or error.",
        "example: digest lint               # every issue in [paths] issues\n"
        "         digest lint drafts/2024-05-01.md",
    ),
]


def _subscriber_actions(command: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = command.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    status_choices = ["active", "unsubscribed", "bounced", "all"]
    table = [
        ("add", "Subscribe an address.", "example: digest subscribers add a@example.org --name 张三"),
        (
            "remove",
            "Unsubscribe an address (--purge erases it).",
            "example: digest subscribers remove a@example.org",
        ),
        ("list", "Show subscribers, tab-separated.", "example: digest subscribers list --status bounced"),
        ("import", "Add the addresses of another CSV.", "example: digest subscribers import old-list.csv"),
        (
            "export",
            "Write the readable subscribers as CSV to stdout (copy the file itself to back it up).",
            "example: digest subscribers export > subscribers-now.csv",
        ),
    ]
    parsers = {}
    for name, help_text, example in table:
        parsers[name] = actions.add_parser(
            name, parents=[common], help=help_text, description=help_text, epilog=example
        )
    parsers["add"].add_argument("email")
    parsers["add"].add_argument("--name", default="")
    parsers["add"].add_argument(
        "--sections", default="", help="slugs separated by commas or ';', such as papers,projects"
    )
    parsers["remove"].add_argument("email")
    parsers["remove"].add_argument(
        "--purge", action="store_true", help="erase the line instead of unsubscribing"
    )
    parsers["import"].add_argument("file")
    for name, default in (("list", "active"), ("export", "all")):
        parsers[name].add_argument("--status", choices=status_choices, default=default)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digest",
        description="Turn a markdown newsletter into Atom/RSS feeds and an email digest.",
        epilog="example: digest run    # one idempotent pass, made for cron",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"digest {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $DIGEST_CONFIG, else ./digest.toml)",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    commands = {}
    for name, handler, help_text, example in _COMMANDS:
        command = sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog=example,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.set_defaults(handler=handler)
        commands[name] = command
    commands["parse"].add_argument("files", nargs="+", metavar="FILE", help="issue files")
    commands["parse"].add_argument("--json", action="store_true", help="one JSON object per line per file")
    commands["lint"].add_argument("files", nargs="*", metavar="FILE", help="issue files (default: all)")
    preview = commands["preview"]
    preview.add_argument("issue", metavar="ISSUE", help="the issue's file stem (2026-11-01) or a path")
    preview.add_argument("--serve", action="store_true", help="show the preview on a local web page")
    preview.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    preview.add_argument(
        "--port", type=_port, default=8000, help="port to serve on (default: 8000; 0 picks one)"
    )
    preview.add_argument("--to", metavar="ADDRESS", help="send one copy marked [TEST] to ADDRESS")
    send = commands["send"]
    send.add_argument("issue", metavar="ISSUE", help="the issue's file stem (2026-11-01) or a path")
    send.add_argument("--resend", action="store_true", help="start a new round: mail everyone again")
    send.add_argument("--force", action="store_true", help="mail despite lint errors or a future date")
    send.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    _subscriber_actions(commands["subscribers"], common)
    commands["run"].add_argument(
        "--quiet", "-q", action="store_true", help="print nothing when nothing was done"
    )
    commands["watch"].add_argument(
        "--interval", type=_positive, default=60.0, metavar="SECONDS", help="default: 60"
    )
    for name in ("approve", "hold"):
        commands[name].add_argument(
            "issue", metavar="ISSUE", help="the issue's file stem (2026-11-01) or a path"
        )
    commands["bounces"].add_argument(
        "--dry-run", action="store_true", help="say what each message would change; change nothing"
    )
    commands["approve"].add_argument("--force", action="store_true", help="approve despite lint errors")
    commands["serve"].add_argument("--host", help="address to bind (default: [serve] host, 127.0.0.1)")
    commands["serve"].add_argument("--port", type=_port, help="port (default: [serve] port, 8025)")
    return parser
