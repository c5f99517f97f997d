"""The digest a subscriber gets: the email rendered once per variant, then one message each.

Takes an issue and the config; hands on pre-rendered parts and per-subscriber
MIME messages with signed unsubscribe links (:mod:`.tokens`).
"""
