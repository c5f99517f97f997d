"""Reading the bounce mailbox: a Maildir on disk, or an IMAP folder over TLS.

Both give the messages not yet handled (Maildir: in ``new/``, or in ``cur/`` without
the Seen flag; IMAP: without ``\\Seen``), as (key, bytes), and move one aside only
when asked, which the caller does after the message's outcome is recorded: a
crash in between leaves the message where it was, to be read again.
``[bounces] mailbox`` is ``maildir:PATH`` (relative to the config file) or
``imaps://user@host[:port]/FOLDER`` with the password in ``$DIGEST_IMAP_PASSWORD``.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from digest.config import Config
from digest.errors import DigestError

__all__ = ["IMAP_PASSWORD_ENV", "Mailbox", "MaildirBox", "open_mailbox"]

IMAP_PASSWORD_ENV = "DIGEST_IMAP_PASSWORD"
IMAP_TIMEOUT = 30.0


class Mailbox(Protocol):
    def unread(self) -> Iterator[tuple[str, bytes]]: ...
    def move_aside(self, key: str) -> None: ...
    def close(self) -> None: ...


class MaildirBox:
    """A Maildir (what postfix, dovecot and fetchmail deliver into); handled mail goes to cur/ flagged S."""

    def __init__(self, path: Path):
        if path.exists() and not ((path / "new").is_dir() and (path / "cur").is_dir()):
            raise DigestError("the bounce mailbox is not a Maildir (it needs new/ and cur/)", path=path)
        self.path = path

    def unread(self) -> Iterator[tuple[str, bytes]]:
        """Messages in new/, and in cur/ without the Seen flag; a key is ``new/NAME`` or ``cur/NAME``."""
        for sub in ("new", "cur"):
            if not (self.path / sub).is_dir():  # nothing has come back yet: the server makes it then
                continue
            for name in sorted(os.listdir(self.path / sub)):
                if name.startswith(".") or (sub == "cur" and "S" in _flags(name)):
                    continue
                try:
                    yield f"{sub}/{name}", (self.path / sub / name).read_bytes()
                except FileNotFoundError:  # taken by another reader meanwhile
                    continue

    def move_aside(self, key: str) -> None:
        """Into cur/ with the Seen flag: one rename, so it is either done or not.

        Not fsynced: if a crash undoes the rename, the message is read again and the
        record (which is fsynced) knows it was handled.
        """
        name = key.split("/", 1)[1]
        base, flags = name.split(":2,", 1) if ":2," in name else (name, "")
        target = self.path / "cur" / f"{base}:2,{''.join(sorted(set(flags) | {'S'}))}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.path / key, target)

    def close(self) -> None:
        pass


def _flags(name: str) -> str:
    return name.split(":2,", 1)[1] if ":2," in name else ""


class ImapBox:
    """An IMAP folder over TLS; handled mail is flagged ``\\Seen`` or moved to ``[bounces] folder``."""

    def __init__(self, url: str, config: Config):
        parts = urlsplit(url)
        password = os.environ.get(IMAP_PASSWORD_ENV)
        if password is None:
            raise DigestError(f"[bounces] mailbox is IMAP: set {IMAP_PASSWORD_ENV} to its password")
        context = ssl.create_default_context(
            cafile=str(config.bounces.ca_file) if config.bounces.ca_file else None
        )
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        self.target = config.bounces.folder
        where = f"{parts.hostname}:{parts.port or 993}"
        try:
            self.imap = imaplib.IMAP4_SSL(
                parts.hostname or "", parts.port or 993, ssl_context=context, timeout=IMAP_TIMEOUT
            )
            self.imap.login(unquote(parts.username or ""), password)
            capabilities = self.imap.capability()[1]  # what the server offers once logged in
            self.can_move = b"MOVE" in (capabilities[0] or b"").upper().split()
            status, _ = self.imap.select(_quote(self.folder))
        except (OSError, imaplib.IMAP4.error) as exc:
            raise DigestError(f"cannot read the bounce mailbox at {where}: {exc}") from None
        if status != "OK":
            raise DigestError(f"the bounce mailbox has no folder {self.folder!r} at {where}")

    def unread(self) -> Iterator[tuple[str, bytes]]:
        status, data = self.imap.uid("SEARCH", "UNSEEN")
        if status != "OK":
            raise DigestError(f"the IMAP server refused to search {self.folder!r}")
        for uid in (data[0] or b"").split():
            status, parts = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
            body = next((p[1] for p in parts if isinstance(p, tuple)), None) if status == "OK" else None
            if body is not None:
                yield uid.decode(), body

    def move_aside(self, key: str) -> None:
        self.imap.uid("STORE", key, "+FLAGS.SILENT", r"(\Seen)")
        if not self.target:
            return
        if self.can_move:  # RFC 6851: one step, and no EXPUNGE of anyone else's deletions
            status, _ = self.imap.uid("MOVE", key, _quote(self.target))
            if status == "OK":
                return
        status, _ = self.imap.uid("COPY", key, _quote(self.target))
        if status != "OK":
            raise DigestError(f"the IMAP server cannot copy into {self.target!r} (does the folder exist?)")
        self.imap.uid("STORE", key, "+FLAGS.SILENT", r"(\Deleted)")
        self.imap.expunge()

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.imap.logout()


def _quote(folder: str) -> str:
    return folder if re.fullmatch(r"[A-Za-z0-9._/-]+", folder) else '"' + folder.replace('"', r"\"") + '"'


def open_mailbox(config: Config) -> Mailbox:
    """The configured ``[bounces] mailbox``, opened."""
    url = config.bounces.mailbox
    if url.startswith("maildir:"):
        return MaildirBox(config.root / url[len("maildir:") :].strip())
    return ImapBox(url, config)
