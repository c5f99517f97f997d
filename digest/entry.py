"""The console-script entry point.

Kept tiny: ``digest run`` on an idle cron tick answers from a snapshot without
importing argparse, the config loader or any of the heavy libraries
(see :mod:`digest.release.idle`); everything else goes to :mod:`digest.cli`.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


_GLOBAL = {"--config": 2, "-q": 1, "--quiet": 1}  # options that may come before the command, and their length


def _run_options(argv: list[str]) -> list[str] | None:
    """The options of ``digest [--config X] [-q] run [...]`` wherever they stand; None for another command."""
    index = 0
    while index < len(argv) and argv[index] != "run":
        width = 1 if argv[index].startswith("--config=") else _GLOBAL.get(argv[index], 0)
        if not width:
            return None
        index += width
    return argv[:index] + argv[index + 1 :] if index < len(argv) else None


def main() -> int:
    argv = sys.argv[1:]
    options = _run_options(argv)
    if options is not None:
        import time

        from digest.release import idle

        config_path = idle.config_path_from_argv(options)
        if config_path is not None and idle.is_idle(config_path, time.time()):
            if "--quiet" not in options and "-q" not in options:
                print("nothing to do")
            return 0
    from digest.cli import main as cli_main

    return cli_main(argv)
