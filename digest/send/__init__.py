"""Sending: getting the digest to each subscriber exactly once.

Takes a rendered issue and the subscriber list (:mod:`digest.subscribers`); talks
SMTP or writes a Maildir (``transport``), and keeps the delivery ledger that says who
was mailed what (``ledger``), so a re-run or a crash never mails anyone twice.
``delivery`` runs a round: the processes, the connections, the pauses.
"""
