"""The command line's grammar: every command, its options and its help with an example."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from digest import __version__
from digest.cli.commands import (
    cmd_approve,
    cmd_bounces,
    cmd_feeds,
    cmd_hold,
    cmd_init,
    cmd_lint,
    cmd_parse,
    cmd_preview,
    cmd_run,
    cmd_send,
    cmd_serve,
    cmd_status,
    cmd_subscribers,
    cmd_watch,
)
from digest.config import DEFAULT_SERVE_PORT

__all__ = ["build_parser"]

Handler = Callable[[argparse.Namespace], int]


def cmd_completion(args: argparse.Namespace) -> int:
    """A completion script written from this grammar, so it names every command and option there is."""
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return 0


_COMMANDS: list[tuple[str, Handler, str, str]] = [
    (
        "init",
        cmd_init,
        "Write a commented digest.toml for a folder of issues (or a new newsletter); overwrites nothing.",
        "example: digest init               # finds issues/, _posts/, content/posts/ ... here\n"
        "         digest init _posts --base-url https://news.example.com/",
    ),
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
        "example: digest serve --port 8470    # then proxy https://example.org/digest/ to it",
    ),
    (
        "lint",
        cmd_lint,
        "Check issue files; exit 1 on any fatal finding or error.",
        "example: digest lint               # every issue in [paths] issues\n"
        "         digest lint drafts/2024-05-01.md",
    ),
    (
        "completion",
        cmd_completion,
        "Print a shell completion script for bash, zsh or tcsh.",
        "example: digest completion bash > ~/.local/share/bash-completion/completions/digest",
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
        (
            "list",
            "Show subscribers, tab-separated (or --json).",
            "example: digest subscribers list --status bounced",
        ),
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
    parsers["list"].add_argument(
        "--json", action="store_true", help="one JSON object per line per subscriber"
    )


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


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--config, -v and -q, before the command or after it (a command's own copy leaves unset ones alone)."""

    def unset(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--config",
        metavar="PATH",
        default=unset(None),
        help="config file (default: $DIGEST_CONFIG, else ./digest.toml)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=unset(0), help="say more (log lines at debug level)"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=unset(0),
        help="say less: warnings and errors only (digest run: nothing when there is nothing to do)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digest",
        description="Turn a markdown newsletter into Atom/RSS feeds and an email digest.",
        epilog="example: digest run    # one idempotent pass, made for cron",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"digest {__version__}")
    _global_options(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, top=False)
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
    commands["status"].add_argument("--json", action="store_true", help="one JSON object per line per issue")
    init = commands["init"]
    init.add_argument(
        "folder", nargs="?", metavar="FOLDER", help="the folder of issues (default: found here)"
    )
    init.add_argument("--title", default="", help="the newsletter's name (default: read from its issues)")
    init.add_argument("--base-url", default="", metavar="URL", help="where the newsletter is published")
    init.add_argument(
        "--language", default="", metavar="TAG", help="e.g. en, zh-CN (default: read from the issues)"
    )
    commands["completion"].add_argument("shell", choices=["bash", "zsh", "tcsh"])
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
    commands["serve"].add_argument(
        "--port", type=_port, help=f"port (default: [serve] port, {DEFAULT_SERVE_PORT})"
    )
    return parser
