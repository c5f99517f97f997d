"""A private postfix and a private dovecot for tests, each on 127.0.0.1 with its own config,
and a base for the small scripted servers some tests talk to.

Debian's packages (``postfix``, ``dovecot-imapd``) are used as installed; the system
services are never touched: each instance has its own config, queue and state
directories under a temporary folder, its own port, and is stopped afterwards.
Tests skip when a server is absent, unless ``DIGEST_REQUIRE_POSTFIX=1`` /
``DIGEST_REQUIRE_DOVECOT=1`` (as in CI) make them fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

POSTFIX = "/usr/sbin/postfix"
DOVECOT = "/usr/sbin/dovecot"
MAIL_UID = 65534  # nobody: owns the delivered mail, never root


def require(binary: str, env: str, package: str) -> None:
    if os.path.exists(binary) and os.geteuid() == 0:
        return
    why = (
        f"{binary} is not installed (apt-get install {package})" if not os.path.exists(binary) else "not root"
    )
    if os.environ.get(env):
        pytest.fail(f"{why}; {env}=1 asks for it")
    pytest.skip(why)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port free now and outside the kernel's ephemeral range.

    A server that binds its own port (postfix, dovecot) cannot be handed a bound
    socket, so there is a gap between choosing the port and its bind. A port from
    the ephemeral range could be taken in that gap by any outgoing connection on
    the machine; one below it is only taken by another process choosing the same
    way, which the start below retries.
    """
    low, _high = _ephemeral_range()
    top = max(low - 1, 10_001)
    while True:
        port = random.randint(10_000, top)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _start(start, server, logs: list[Path], what: str, attempts: int = 3) -> None:
    """Start ``server`` and wait until it listens; a port taken meanwhile means a new port and another try."""
    for attempt in range(attempts):
        try:
            start()
        except subprocess.CalledProcessError as exc:
            said = "".join(log.read_text(errors="replace") for log in logs if log.exists())
            if "in use" in said and attempt + 1 < attempts:
                server.move_to(free_port())
                continue
            raise AssertionError(f"{what} did not start ({exc}): {said[-2000:]}") from None
        wait_for(lambda: _listening(server.port), f"{what} on 127.0.0.1:{server.port}")
        return


def wait_for(condition, what: str, timeout: float = 30.0):
    """Poll ``condition`` until it returns something true; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _private_dir(prefix: str) -> Path:
    """A folder the mail servers' own users can reach (pytest's tmp_path is root-only)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


class Postfix:
    """A running private postfix: mail to ``domain`` is delivered into Maildirs, unknown users bounce."""

    def __init__(self, root: Path, domain: str, users: list[str]):
        self.root, self.domain, self.port = root, domain, free_port()
        self.conf, self.mail = root / "conf", root / "mail"
        for sub in ("conf", "queue", "data", "mail"):
            (root / sub).mkdir()
        shutil.chown(root / "data", "postfix")
        os.chown(self.mail, MAIL_UID, MAIL_UID)
        (self.conf / "vmailbox").write_text("".join(f"{u}@{domain} {u}/\n" for u in users))
        (self.conf / "main.cf").write_text(self._main_cf())
        (self.conf / "master.cf").write_text(self._master_cf())

    def maildir(self, user: str) -> Path:
        return self.mail / user

    def _main_cf(self) -> str:
        root = self.root
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": root / "queue",
            "data_directory": root / "data",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": f"mx.{self.domain}",
            "mydomain": self.domain,
            "myorigin": self.domain,
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": "",
            "smtpd_relay_restrictions": "reject_unauth_destination",  # nothing is relayed anywhere
            "default_transport": "error:5.7.1 this test server delivers no outside mail",
            "maillog_file_prefixes": root,
            "maillog_file": root / "maillog",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": f"texthash:{self.conf / 'vmailbox'}",
            "virtual_uid_maps": f"static:{MAIL_UID}",
            "virtual_gid_maps": f"static:{MAIL_UID}",
            "smtpd_reject_unlisted_recipient": "no",  # accept, then bounce: as a relay in front would
            "recipient_delimiter": "+",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "smtp_dns_support_level": "disabled",
            "smtputf8_enable": "no",
        }
        return "".join(f"{key} = {value}\n" for key, value in settings.items())

    def _master_cf(self) -> str:
        lines = []
        shipped = [Path("/usr/share/postfix/master.cf.dist"), Path("/etc/postfix/master.cf")]
        source = next(p for p in shipped if p.exists())  # the package's, however debconf configured it
        for line in source.read_text().splitlines():
            fields = line.split()
            if not fields or line.startswith("#"):
                continue
            if line[0].isspace():
                lines.append(line)
                continue
            if fields[:2] == ["smtp", "inet"]:
                fields[0] = f"127.0.0.1:{self.port}"
            if len(fields) >= 8:
                fields[4] = "n"  # no chroot: the queue is in a temporary folder
            lines.append(" ".join(fields))
        return "\n".join(lines) + "\n"

    def move_to(self, port: int) -> None:
        self.port = port
        (self.conf / "master.cf").write_text(self._master_cf())

    def postfix(self, action: str) -> None:
        subprocess.run([POSTFIX, "-c", str(self.conf), action], check=True, capture_output=True, timeout=60)

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_postfix(domain: str, users: list[str]):
    require(POSTFIX, "DIGEST_REQUIRE_POSTFIX", "postfix")
    root = _private_dir("digest-postfix-")
    server = Postfix(root, domain, users)
    try:
        _start(lambda: server.postfix("start"), server, [root / "maillog"], "postfix")
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            server.postfix("stop")
        shutil.rmtree(root, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Dovecot:
    """A running private dovecot: IMAP over TLS on 127.0.0.1, one passwd-file user with a Maildir."""

    def __init__(self, root: Path, cert, user: str, password: str):
        self.root, self.port, self.user, self.password = root, free_port(), user, password
        self.maildir = root / "mail" / user / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True)
        cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
        cert.private_key_pem.write_to_path(str(root / "key.pem"))
        nobody = pwd.getpwuid(MAIL_UID)
        (root / "passwd").write_text(
            f"{user}:{{PLAIN}}{password}:{MAIL_UID}:{nobody.pw_gid}::{root / 'mail' / user}\n"
        )
        subprocess.run(["chown", "-R", f"{MAIL_UID}:{nobody.pw_gid}", str(root / "mail")], check=True)
        (root / "dovecot.conf").write_text(self._conf())

    def move_to(self, port: int) -> None:
        self.port = port
        (self.root / "dovecot.conf").write_text(self._conf())

    def _conf(self) -> str:
        root = self.root
        return f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = digest-test-{self.port}
protocols = imap
listen = 127.0.0.1
log_path = {root}/dovecot.log
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain
mail_location = maildir:~/Maildir
first_valid_uid = {MAIL_UID}
last_valid_uid = {MAIL_UID}
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
namespace inbox {{
  inbox = yes
  mailbox Handled {{
    auto = create
  }}
}}
"""


@contextlib.contextmanager
def running_dovecot(cert, user: str = "bounces", password: str = "imap-test-password"):
    require(DOVECOT, "DIGEST_REQUIRE_DOVECOT", "dovecot-imapd")
    root = _private_dir("digest-dovecot-")
    server = Dovecot(root, cert, user, password)
    conf = str(root / "dovecot.conf")
    try:

        def start() -> None:
            with (root / "start.log").open("ab") as log:  # dovecot's daemons inherit these: not a pipe
                subprocess.run([DOVECOT, "-c", conf], check=True, stdout=log, stderr=log, timeout=60)

        _start(start, server, [root / "start.log", root / "dovecot.log"], "dovecot")
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [DOVECOT, "-c", conf, "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


class LoopbackServer:
    """A small asyncio server on 127.0.0.1 and an ephemeral port; ``async with`` gives the port.

    Subclasses answer one client in ``_session``.
    """

    async def __aenter__(self) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
