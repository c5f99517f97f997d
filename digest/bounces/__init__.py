"""The mail that comes back: bounces, complaints and unsubscribe-by-mail.

``mailbox`` reads the bounce box (a Maildir or IMAP), ``classify`` tells what a
message or a provider's webhook event reports (and for whom), and ``record``
remembers every event (``store``: ``bounces.sqlite``) and applies what it means to the list.
"""
