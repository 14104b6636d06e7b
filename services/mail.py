"""Outgoing mail: SMTP when SMTP_HOST is set, otherwise written to the log.

Mail leaves on a background thread so a request's timing never depends on the mail server
(and so never reveals whether an address has an account).
"""

import contextvars
import logging
import smtplib
from concurrent.futures import Future, ThreadPoolExecutor
from email.message import EmailMessage

from config import settings

log = logging.getLogger("madang.mail")
_sender = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mail")


def build_message(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.MAIL_FROM
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def deliver(message: EmailMessage) -> None:
    if not settings.SMTP_HOST:
        log.warning(
            "mail (console backend) to %s: %s\n%s", message["To"], message["Subject"], message.get_content()
        )
        return
    with smtplib.SMTP(settings.SMTP_HOST, settings.SMTP_PORT, timeout=settings.SMTP_TIMEOUT_SECONDS) as smtp:
        if settings.SMTP_STARTTLS:
            smtp.starttls()
        if settings.SMTP_USER:
            smtp.login(settings.SMTP_USER, settings.SMTP_PASSWORD)
        smtp.send_message(message)


def _deliver_logging_errors(message: EmailMessage) -> None:
    try:
        deliver(message)
    except Exception:
        log.exception("could not send mail to %s", message["To"])


def mask_address(address: str) -> str:
    """`minji@example.com` -> `m***@example.com`: enough for the owner to recognise it, too
    little for someone else reading the mail to learn it."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def send_later(to: str, subject: str, body: str) -> Future[None]:
    # In the caller's context, so what the mail thread logs carries the request's id.
    context = contextvars.copy_context()
    return _sender.submit(context.run, _deliver_logging_errors, build_message(to, subject, body))
