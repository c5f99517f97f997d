"""The subscriber list: where readers are kept, and the only way digest changes them.

The list is a plain CSV a person may edit by hand (``model``: one record and its
format; ``reading``: reading it). digest's own changes (CLI, web, webhooks, bounces)
go to a journal beside it (``journal``) and are folded into the CSV by a locked,
byte-preserving rewrite (``rewrite``); an SQLite index (``index``) finds one address
without reading the whole list. ``changes`` holds the operations everyone calls.
"""
