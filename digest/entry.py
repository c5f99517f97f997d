"""The console-script entry point.

Kept tiny: ``digest run`` on an idle cron tick answers from a snapshot without
importing argparse or any of the heavy libraries (see :mod:`digest.idle`).
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    from digest.cli import main as cli_main

    return cli_main(sys.argv[1:])
