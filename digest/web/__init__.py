"""What runs in a browser: the editor's preview and the readers' self-service server.

Takes issues, rendered digests and the subscriber list; hands on HTTP pages and
changes to the list made through signed links.
"""
