"""The subscriber list: where readers are kept, and the only way digest changes them.

The list is a plain CSV a person may edit by hand (``model``: one record and its
format; ``reading``: reading it). digest's own changes (CLI, web, webhooks, bounces)
go to a journal beside it (``journal``) and are folded into the CSV by a locked,
byte-preserving rewrite (``rewrite``); an SQLite index (``index``) finds one address
without reading the whole list. ``changes`` holds the operations everyone calls.

The promise (docs/explanation/subscriber-list.md): a change digest acknowledged is
never lost and is applied at most once; a hand edit is never overwritten; a reader
who is not active when a message to them is about to go is not mailed, and an
erased one never again; a malformed line of the list or the journal is a one-line
message naming file and line, skipped, never folded; the file's encoding, byte order
mark, line endings and untouched lines survive every rewrite; nothing is left
behind by a killed process.
"""
