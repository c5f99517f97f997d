"""``python -m digest``: the same as the ``digest`` command."""

from digest.entry import main

raise SystemExit(main())
