"""digest: a markdown newsletter in a git repo, turned into Atom/RSS feeds and an email digest.

The pipeline (see :mod:`digest.pipeline`): parse each issue file into a frozen
model, build feeds from the published issues, render the email once per variant,
and deliver it to each subscriber exactly once after the editor approves.
Importing this package is cheap on purpose: ``digest run`` on an idle cron tick
must cost little more than starting Python.
"""

__all__ = ["__version__"]

__version__ = "0.2.0"
