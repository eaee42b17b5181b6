"""Where alerts go: an operators' Telegram chat (through the Telegram publisher, the same
adapter the channel posts with), email over SMTP (STARTTLS by default, implicit TLS, or plain
on loopback only), and a generic JSON webhook (Slack, Teams, PagerDuty-style receivers).

Each sends one alert once, with a timeout, and raises AlertNotSent (masked of every secret) when
it could not; the alerter tries again later. Secrets (the bot token, the SMTP password, the
webhook's URL and headers) are read by name when first needed.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

import requests

from broadcaster.alerts.checks import alert_account
from broadcaster.alerts.model import Alert, Context, payload, subject_line, text
from broadcaster.core.clock import Clock
from broadcaster.core.config import AccountConfig, AlertDestinationConfig, Config
from broadcaster.core.logs import redact
from broadcaster.core.secrets import SecretError, Secrets
from broadcaster.publishers.base import PublisherEnv, PublishError
from broadcaster.publishers.http import is_loopback, platform_session, require_https
from broadcaster.publishers.telegram import TelegramPublisher


class AlertNotSent(Exception):
    """The destination did not take the alert; the message names why, never a secret."""


class Destination(Protocol):
    name: str

    def wants(self, kind: str) -> bool: ...

    def send(self, alert: Alert, ctx: Context) -> None: ...

    def check(self) -> str: ...

    def close(self) -> None: ...


class _Base:
    def __init__(self, config: AlertDestinationConfig, secrets: Secrets) -> None:
        self.config = config
        self.name = config.name
        self.secrets = secrets

    def wants(self, kind: str) -> bool:
        return self.config.alerts is None or kind in self.config.alerts

    def _secret(self, name: str, what: str) -> str:
        try:
            return self.secrets.get(name, what=f"alerts {self.name} {what}")
        except SecretError as exc:
            raise AlertNotSent(str(exc)) from None

    def close(self) -> None:
        """Release connections."""


class TelegramDestination(_Base):
    """A private chat or group of the operators, posted to by a bot through the Telegram
    publisher (never a channel of `[[accounts]]`: the configuration refuses it)."""

    def __init__(
        self, config: AlertDestinationConfig, secrets: Secrets, clock: Clock, workdir: Path
    ) -> None:
        super().__init__(config, secrets)
        self.clock = clock
        self.workdir = workdir
        self._publisher: TelegramPublisher | None = None

    def account(self) -> AccountConfig:
        return alert_account(self.config)

    def publisher(self) -> TelegramPublisher:
        if self._publisher is None:
            env = PublisherEnv(
                clock=self.clock, posts_path=self.workdir / "alerts.jsonl", secrets=self.secrets
            )
            try:
                self._publisher = TelegramPublisher(self.account(), env)
            except SecretError as exc:
                raise AlertNotSent(str(exc)) from None
        return self._publisher

    def send(self, alert: Alert, ctx: Context) -> None:
        try:
            self.publisher().send_text(text(alert, ctx))
        except PublishError as exc:
            raise AlertNotSent(redact(f"{type(exc).__name__}: {exc}")) from None

    def check(self) -> str:
        try:
            return self.publisher().check()
        except PublishError as exc:
            raise AlertNotSent(redact(f"{type(exc).__name__}: {exc}")) from None

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()


class EmailDestination(_Base):
    """Mail through an SMTP relay: STARTTLS (refusing a relay that does not offer it), implicit
    TLS, or plain on loopback only; certificates verified, against `ca_file` when given."""

    def __init__(self, config: AlertDestinationConfig, secrets: Secrets, ca_file: Path | None):
        super().__init__(config, secrets)
        self.ca_file = ca_file

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        host = c.smtp_host or ""
        if c.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                host, c.smtp_port, timeout=c.timeout, context=self._context()
            )
        else:
            smtp = smtplib.SMTP(host, c.smtp_port, timeout=c.timeout)
        try:
            smtp.ehlo()
            if c.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise AlertNotSent(
                        f"email {self.name}: {host} does not offer STARTTLS; nothing was sent in "
                        "clear"
                    )
                smtp.starttls(context=self._context())
                smtp.ehlo()
            elif c.security == "none" and not is_loopback(host):
                raise AlertNotSent(f"email {self.name}: plain SMTP is allowed on loopback only")
            if c.username and c.password:
                smtp.login(
                    self._secret(c.username, "username"), self._secret(c.password, "password")
                )
        except BaseException:
            _quit(smtp)
            raise
        return smtp

    def _run(self, action: str, work: object) -> None:
        try:
            smtp = self._connect()
            try:
                if callable(work):
                    work(smtp)
            finally:
                _quit(smtp)
        except AlertNotSent:
            raise
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            detail = str(exc)[:200]
            raise AlertNotSent(
                redact(f"email {self.name} {action}: {type(exc).__name__}: {detail}")
            ) from None

    def send(self, alert: Alert, ctx: Context) -> None:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = ", ".join(self.config.to)
        message["Subject"] = subject_line(alert, ctx)
        message["Date"] = formatdate(localtime=False)
        domain = (self.config.sender or "alerts@localhost").rsplit("@", 1)[1]
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(text(alert, ctx))
        self._run("send", lambda smtp: smtp.send_message(message))

    def check(self) -> str:
        self._run("check", lambda smtp: smtp.noop())
        how = {"starttls": "STARTTLS", "tls": "TLS", "none": "plain (loopback)"}
        return (
            f"SMTP {self.config.smtp_host}:{self.config.smtp_port} answers over "
            f"{how[self.config.security]}; alerts go to {', '.join(self.config.to)}"
        )


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


class WebhookDestination(_Base):
    """A JSON POST to the URL held by the secret `url` (https, or http on loopback), with
    headers from secrets; no redirect followed, nothing retried inside."""

    def __init__(self, config: AlertDestinationConfig, secrets: Secrets) -> None:
        super().__init__(config, secrets)
        self.session = platform_session(config.timeout)

    def _target(self) -> tuple[str, dict[str, str]]:
        url = self._secret(self.config.url or "", "url")
        try:
            require_https(url)
        except ValueError as exc:
            raise AlertNotSent(f"webhook {self.name}: the URL {exc}") from None
        headers = {h: self._secret(n, f"header {h}") for h, n in self.config.headers.items()}
        return url, headers

    def send(self, alert: Alert, ctx: Context) -> None:
        url, headers = self._target()
        try:
            resp = self.session.post(url, json=payload(alert, ctx), headers=headers)
        except requests.RequestException as exc:
            raise AlertNotSent(f"webhook {self.name}: {type(exc).__name__}") from None
        resp.close()
        if not 200 <= resp.status_code < 300:
            raise AlertNotSent(f"webhook {self.name}: HTTP {resp.status_code}")

    def check(self) -> str:
        url, _ = self._target()
        return f"webhook URL set ({url.split('://', 1)[0]}, {len(self.config.headers)} headers)"

    def close(self) -> None:
        self.session.close()


def build(config: Config, clock: Clock, workdir: Path) -> list[Destination]:
    """The enabled `[[alerts]]` destinations."""
    secrets = Secrets(config.path(config.secrets.file))
    out: list[Destination] = []
    for dest in config.alerts:
        if not dest.enabled:
            continue
        if dest.kind == "telegram":
            out.append(TelegramDestination(dest, secrets, clock, workdir))
        elif dest.kind == "email":
            out.append(EmailDestination(dest, secrets, config.path(dest.ca_file)))
        else:
            out.append(WebhookDestination(dest, secrets))
    return out
