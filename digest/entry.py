"""The console-script entry point.

Kept tiny: ``digest run`` on an idle cron tick answers from a snapshot without
importing argparse, the config loader or any of the heavy libraries
(see :mod:`digest.release.idle`); everything else goes to :mod:`digest.cli`.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["run"]:
        import time

        from digest.release import idle

        config_path = idle.config_path_from_argv(argv[1:])
        if config_path is not None and idle.is_idle(config_path, time.time()):
            if "--quiet" not in argv and "-q" not in argv:
                print("nothing to do")
            return 0
    from digest.cli import main as cli_main

    return cli_main(argv)
