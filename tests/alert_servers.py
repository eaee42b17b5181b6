"""Local receivers for the alerts' tests: an SMTP server (aiosmtpd, STARTTLS with a throwaway
CA, login required over TLS) and a webhook receiver; each started and torn down by a fixture."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.local_servers import free_port

SMTP_USER = "alerts@example.org"
SMTP_PASSWORD = "smtp-password-value-123"


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls_at_login: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    ca_file: Path
    mailbox: Mailbox


@contextmanager
def smtp_server(tmp: Path, *, starttls: bool = True) -> Iterator[SmtpServer]:
    """A local SMTP server offering STARTTLS (or not) and requiring a login over TLS."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    mailbox = Mailbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == SMTP_USER
            and data.password.decode() == SMTP_PASSWORD
        )
        mailbox.logins.append(data.login.decode() if isinstance(data, LoginPassword) else "?")
        mailbox.tls_at_login.append(session.ssl is not None)
        return AuthResult(success=ok)

    options: dict[str, Any] = {"authenticator": authenticate, "auth_require_tls": starttls}
    if starttls:
        options.update(tls_context=context, require_starttls=True)
    else:
        options.update(auth_require_tls=False)
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, ca_file, mailbox)
    finally:
        controller.stop()


@dataclass
class Webhook:
    url: str
    received: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 200


@contextmanager
def webhook_server() -> Iterator[Webhook]:
    hook = Webhook("")

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            hook.received.append((dict(self.headers.items()), body))
            status = hook.statuses.pop(0) if hook.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ops"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
