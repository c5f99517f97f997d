"""The ``digest`` command line: a thin layer over the library.

Each command is a few lines that load the config, call one library function and
print its result (:mod:`digest.cli.commands`); :mod:`digest.cli.parser` describes
them to argparse. Every error is one line on stderr (``digest: PATH:LINE: message``)
and a non-zero exit status, one of :data:`EXIT_CODES`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from digest.cli.commands import error
from digest.cli.parser import build_parser
from digest.errors import DigestError

__all__ = ["EXIT_CODES", "build_parser", "main"]

# Every exit status digest uses, as the reference documents them (sysexits.h where one fits).
EXIT_CODES: dict[int, str] = {
    0: "done (or nothing to do)",
    1: "refused or failed: a config, issue, list or mail error, told in one line on stderr",
    2: "the command line is wrong (unknown command or option, missing argument)",
    70: "internal error (EX_SOFTWARE): a bug; set DIGEST_DEBUG=1 for the traceback and report it",
    75: "try again later (EX_TEMPFAIL): another digest holds the lock, or some mail was deferred",
    130: "interrupted (Ctrl-C)",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    configure_logging(args.verbose - args.quiet)
    try:
        return int(args.handler(args))
    except DigestError as exc:
        error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: never show a traceback
        if os.environ.get("DIGEST_DEBUG"):
            raise
        error(f"internal error: {exc.__class__.__name__}: {exc} (set DIGEST_DEBUG=1 for details)")
        return 70


def configure_logging(verbosity: int) -> None:
    """Timestamped, levelled lines on stderr for the long-running commands (serve, watch) and -v."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(max(-1, verbosity), logging.DEBUG)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )
