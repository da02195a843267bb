"""STARTTLS and SMTP AUTH on the listeners, end to end: the real daemon,
a throw-away certificate made with openssl, swaks and hand-written
sessions (socket + Python's ssl) for what swaks will not do (pipelining
after STARTTLS, AUTH in clear)."""
import base64
import signal
import socket
import ssl
import subprocess
import time

import pytest

from gateway_util import swaks

T = 60


def make_cert(d, name="tls"):
    """A P-256 key and a self-signed certificate for it: (cert, key)."""
    cert, key = d / f"{name}.crt", d / f"{name}.key"
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
         "-subj", "/CN=gw.test", "-days", "2"],
        capture_output=True, timeout=T)
    assert r.returncode == 0, r.stderr.decode()
    return cert, key


def make_users(d, **users):
    """A users file with SHA-512 crypt hashes (as mkpasswd -m sha-512):
    NAME="password" (no senders field) or NAME=("password", "senders")."""
    lines = ["# user:hash[:senders]"]
    for user, password in users.items():
        password, senders = (password if isinstance(password, tuple)
                             else (password, None))
        r = subprocess.run(["openssl", "passwd", "-6", password],
                           capture_output=True, timeout=T, check=True)
        lines.append(f"{user}:{r.stdout.decode().strip()}"
                     + (f":{senders}" if senders is not None else ""))
    path = d / "users"
    path.write_text("\n".join(lines) + "\n")
    return path


def listener_keys(gw, name, **keys):
    """Adds KEY = VALUE lines to [listener NAME] of the gateway's file."""
    text = gw.conf.read_text()
    marker = f"[listener {name}]\n"
    assert marker in text
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    gw.conf.write_text(text.replace(marker, marker + extra))


def tls_gateway(gateway, auth=False, **kw):
    """A gateway whose outgoing listener has a certificate (and AUTH)."""
    gw = gateway(**kw)
    cert, key = make_cert(gw.root)
    keys = {"tls_cert": cert, "tls_key": key}
    if auth:
        keys.update(auth="plain",
                    auth_users=make_users(
                        gw.root, alice=("s3cret pass", "sender@example.com")))
    listener_keys(gw, "out", **keys)
    return gw


class Client:
    """A bare SMTP client: lines in, replies out, STARTTLS by hand."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.banner = self.reply()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def reply(self):
        """One whole reply (all its lines) as text."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise EOFError("closed; got " + repr(lines))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] == b" ":
                return "\n".join(lines)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def starttls(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        assert self.buf == b"", self.buf
        self.sock = ctx.wrap_socket(self.sock, server_hostname="gw.test")
        return self.sock.version()

    def close(self):
        self.sock.close()


def plain(user, password, authzid=""):
    return base64.b64encode(
        f"{authzid}\0{user}\0{password}".encode()).decode()


def test_starttls_delivers_and_logs(gateway):
    gw = tls_gateway(gateway).start()
    r = swaks(gw.out_port, "--tls", "--body", "Over TLS.")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert b"220 2.0.0 Ready to start TLS" in r.stdout
    (msg,) = gw.delivered()
    assert b"by gw.test (smimegate) with ESMTPS id " in msg
    assert b"multipart/signed" in msg
    assert gw.stop() == 0
    log = gw.log.read_text()
    assert "event=starttls version=TLSv1." in log
    queued = [l for l in log.splitlines() if "event=queued" in l]
    assert len(queued) == 1 and " tls=TLSv1." in queued[0], queued


def test_starttls_offered_only_once_and_not_by_default(gateway):
    gw = tls_gateway(gateway).start()
    c = Client(gw.out_port)
    assert "STARTTLS" in c.cmd("EHLO client.test")
    assert c.cmd("STARTTLS").startswith("220 2.0.0")
    assert c.starttls() in ("TLSv1.2", "TLSv1.3")
    ehlo = c.cmd("EHLO client.test")
    assert "STARTTLS" not in ehlo and "AUTH" not in ehlo  # no auth here
    assert c.cmd("STARTTLS").startswith("503 ")
    c.close()
    # the incoming listener has no certificate: no STARTTLS at all
    c = Client(gw.in_port)
    assert "STARTTLS" not in c.cmd("EHLO client.test")
    assert c.cmd("STARTTLS").startswith("502 5.5.1")
    c.close()


def test_tls_required_refuses_mail_before_starttls(gateway):
    gw = tls_gateway(gateway)
    listener_keys(gw, "out", tls="required")
    gw.start()
    c = Client(gw.out_port)
    assert "250 STARTTLS" in c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<sender@example.com>") == \
        "530 5.7.0 Must issue a STARTTLS command first"
    c.close()
    r = swaks(gw.out_port, "--body", "in clear")
    assert r.returncode != 0 and b"530 5.7.0" in r.stdout
    r = swaks(gw.out_port, "--tls", "--body", "in TLS")
    assert r.returncode == 0, r.stdout.decode()
    (msg,) = gw.delivered()
    assert b"in TLS" in msg


def test_starttls_command_injection_is_discarded(gateway):
    """CVE-2011-0411 class: what follows STARTTLS in the same packet was
    sent in clear and must not run inside TLS."""
    gw = tls_gateway(gateway).start()
    c = Client(gw.out_port)
    c.cmd("EHLO client.test")
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
    assert c.reply().startswith("220 2.0.0")
    # nothing else in clear: no reply to the injected MAIL
    c.sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        c.sock.recv(1)
    c.sock.settimeout(10)
    c.starttls()
    assert c.cmd("EHLO client.test").startswith("250")
    assert c.cmd("RCPT TO:<rcpt@example.net>").startswith("503 5.5.1")
    # the session is fine otherwise
    assert c.cmd("MAIL FROM:<sender@example.com>").startswith("250")
    assert c.cmd("RCPT TO:<rcpt@example.net>").startswith("250")
    assert c.cmd("QUIT").startswith("221")
    c.close()
    time.sleep(0.2)
    assert "event=starttls-pipelined discarded=" in gw.log.read_text()
    assert "evil" not in gw.log.read_text()


def test_auth_plain_relays_for_authenticated_users(gateway):
    # loopback may not relay: only AUTH lets the client through
    gw = tls_gateway(gateway, auth=True, relay_from="192.0.2.0/24").start()
    r = swaks(gw.out_port, "--tls", "--body", "anonymous")
    assert r.returncode != 0 and b"554 5.7.1" in r.stdout
    r = swaks(gw.out_port, "--tls", "--auth", "PLAIN", "--auth-user", "alice",
              "--auth-password", "wrong", "--body", "wrong")
    assert r.returncode != 0
    assert b"535 5.7.8" in r.stdout
    r = swaks(gw.out_port, "--tls", "--auth", "PLAIN", "--auth-user", "alice",
              "--auth-password", "s3cret pass", "--body", "Authenticated.")
    assert r.returncode == 0, r.stdout.decode()
    assert b"235 2.7.0" in r.stdout
    (msg,) = gw.delivered()
    assert b"Authenticated." in msg and b"multipart/signed" in msg
    assert b"with ESMTPSA id " in msg
    assert gw.stop() == 0
    log = gw.log.read_text()
    assert "event=auth user=alice mechanism=PLAIN" in log
    assert "event=auth-failed user=alice reason=credentials" in log
    assert "s3cret" not in log and "wrong" not in log


def test_authenticated_users_send_only_as_their_senders(gateway):
    # alice may give alice@example.org and anything @sales.example.org;
    # the gateway signs what she sends, so never as somebody else.
    # Without a senders field a user is only itself (bob@example.org),
    # or nobody when its name is not an address (carol); "*" is anyone
    gw = tls_gateway(gateway, auth=True, relay_from="192.0.2.0/24")
    make_users(gw.root,
               alice=("s3cret pass", "alice@example.org, @sales.example.org"),
               **{"bob@example.org": "bob pass"}, carol="carol pass",
               relay=("relay pass", "*"))
    gw.start()

    def send(frm, user="alice", password="s3cret pass"):
        return swaks(gw.out_port, "--tls", "--auth", "PLAIN", "--auth-user",
                     user, "--auth-password", password, "--body",
                     f"From {frm}.", frm=frm)

    refused = b"553 5.7.1 Sender address not owned by the authenticated user"
    r = send("sender@example.com")
    assert r.returncode != 0 and refused in r.stdout, r.stdout.decode()
    assert send("Alice@Example.org").returncode == 0
    assert send("team@sales.example.org").returncode == 0
    assert send("Bob@Example.ORG", "bob@example.org", "bob pass"
                ).returncode == 0
    r = send("alice@example.org", "bob@example.org", "bob pass")
    assert r.returncode != 0 and refused in r.stdout, r.stdout.decode()
    r = send("carol@example.org", "carol", "carol pass")
    assert r.returncode != 0 and refused in r.stdout, r.stdout.decode()
    assert send("anyone@elsewhere.example", "relay", "relay pass"
                ).returncode == 0
    msgs = gw.delivered(4)
    assert all(b"multipart/signed" in m for m in msgs)
    bodies = b"".join(msgs)
    for frm in (b"sender@example.com", b"alice@example.org", b"carol"):
        assert b"From " + frm + b"." not in bodies
    assert gw.stop() == 0
    log = gw.log.read_text()
    for who in ("user=alice from=<sender@example.com>",
                "user=bob@example.org from=<alice@example.org>",
                "user=carol from=<carol@example.org>"):
        assert "event=sender-refused " + who in log


def test_auth_needs_tls(gateway):
    gw = tls_gateway(gateway, auth=True, relay_from="192.0.2.0/24").start()
    c = Client(gw.out_port)
    ehlo = c.cmd("EHLO client.test")
    assert "STARTTLS" in ehlo and "AUTH" not in ehlo
    assert c.cmd("AUTH PLAIN " + plain("alice", "s3cret pass")).startswith(
        "538 5.7.11")
    assert c.cmd("AUTH PLAIN").startswith("538 5.7.11")
    assert c.cmd("MAIL FROM:<sender@example.com>").startswith("250")
    assert c.cmd("RCPT TO:<rcpt@example.net>").startswith("554 5.7.1")
    c.close()
    # inside TLS: offered, and a 334 exchange works
    c = Client(gw.out_port)
    c.cmd("EHLO client.test")
    c.cmd("STARTTLS")
    c.starttls()
    assert "250 AUTH PLAIN" in c.cmd("EHLO client.test")
    assert c.cmd("AUTH PLAIN") == "334 "
    assert c.cmd(plain("alice", "s3cret pass")).startswith("235 2.7.0")
    assert c.cmd("MAIL FROM:<sender@example.com>").startswith("250")
    assert c.cmd("RCPT TO:<rcpt@example.net>").startswith("250")
    c.close()


def test_bad_key_stops_the_start(gateway):
    gw = gateway()
    cert, _ = make_cert(gw.root)
    _, other = make_cert(gw.root, "other")
    listener_keys(gw, "out", tls_cert=cert, tls_key=other)
    with pytest.raises(AssertionError) as e:
        gw.start()
    assert "daemon exited" in str(e.value)
    assert gw.proc.wait(timeout=T) != 0
    assert f"tls_key {other} does not match the certificate" in \
        gw.log.read_text()


def test_reload_with_broken_certificate_keeps_serving(gateway):
    gw = tls_gateway(gateway).start()
    conf = gw.conf.read_text()
    cert = gw.root / "tls.crt"
    cert.write_text("not a certificate\n")
    gw.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + T
    while "event=reload-refused" not in gw.log.read_text():
        assert time.time() < deadline, gw.log.read_text()
        time.sleep(0.05)
    assert "not a PEM certificate" in gw.log.read_text()
    assert gw.conf.read_text() == conf
    r = swaks(gw.out_port, "--tls", "--body", "still TLS")
    assert r.returncode == 0, r.stdout.decode()
    gw.delivered()
