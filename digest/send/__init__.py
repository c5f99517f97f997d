"""Getting the digest to subscribers exactly once: the list, the transports and the ledger.

Takes a rendered issue and the subscriber CSV; hands on a delivery ledger that
says who was mailed what, so a re-run or a crash never mails anyone twice.
"""
