"""An aiosmtpd next hop for the gateway's end-to-end tests, run in a
thread on 127.0.0.1 by the test and stopped at its end: it records what
arrives, and can refuse recipients (550), answer 451 to the first DATAs,
and offer STARTTLS."""
import ssl
import subprocess
import threading
import time

from aiosmtpd.controller import Controller

from gateway_util import T, free_port


class SinkHandler:
    """Records what arrives; refuses some recipients (550) and the first
    TEMP_DATA messages (451)."""

    def __init__(self, refuse=(), temp_data=0,
                 refuse_text="Recipient address rejected"):
        self.lock = threading.Lock()
        self.messages = []
        self.servers = []  # one per connection that started a transaction
        self.refuse = set(refuse)
        self.refuse_text = refuse_text
        self.temp_data = temp_data
        self.data_calls = 0

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        with self.lock:
            if not any(s is server for s in self.servers):
                self.servers.append(server)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: {self.refuse_text}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.data_calls += 1
            if self.data_calls <= self.temp_data:
                return "451 4.3.0 Try again later"
            self.messages.append({
                "from": envelope.mail_from,
                "rcpts": list(envelope.rcpt_tos),
                "options": list(envelope.mail_options),
                "data": envelope.original_content,
                "tls": session.ssl is not None,
            })
        return "250 2.0.0 Ok: queued as SINK"


def throwaway_cert(d):
    cert, key = d / "sink.pem", d / "sink.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True, timeout=T, check=True)
    return cert, key


class Sink:
    """An aiosmtpd next hop on 127.0.0.1, optionally with STARTTLS."""

    def __init__(self, tmp, tls=False, cert=None, host="127.0.0.1",
                 port=None, **kw):
        """CERT: (certificate, key) files for STARTTLS instead of a
        throw-away self-signed one; either is at self.cert."""
        self.handler = SinkHandler(**kw)
        self.host = host
        self.port = port or free_port()
        self.cert = None
        extra = {}
        if tls:
            cert, key = cert or throwaway_cert(tmp)
            self.cert = cert
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
            extra = {"tls_context": ctx, "require_starttls": False}
        self.ctl = Controller(self.handler, hostname=host,
                              port=self.port, **extra)
        self.ctl.start()

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def messages(self, n=1, timeout=T, log=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.handler.lock:
                if len(self.handler.messages) >= n:
                    return list(self.handler.messages)
            time.sleep(0.05)
        raise AssertionError(f"{n} message(s) not at the sink; log:\n"
                             + (log.read_text() if log else ""))

    def stop(self):
        self.ctl.stop()


