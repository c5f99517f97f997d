"""Reading the newsletter: issue files in, frozen :class:`~digest.newsletter.model.Issue` objects out.

Takes the markdown files of ``[paths] issues``; hands on issues with their lint
findings, each file read and parsed once per command (:mod:`.catalog`).
"""
