"""Shared by the gateway's end-to-end tests: a real `smimegate serve`
daemon with its own store, spool, outbox and configuration on free ports
(Gateway), the fixture helper that makes them and stops them by PID, and
small client helpers."""
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

T = 60


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Gateway:
    """A daemon with its own store, spool, outbox and configuration."""

    def __init__(self, smimegate, root: Path, profile="mode = sign\n",
                 relay_from="127.0.0.0/8, ::1", extra=""):
        self.bin = smimegate
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.out_port, self.in_port = free_port(), free_port()
        self.store = root / "store.db"
        self.outbox = root / "outbox"
        self.conf = root / "smimegate.conf"
        self.log = root / "daemon.log"
        self.proc = None
        self.conf.write_text(
            f"hostname = gw.test\n"
            f"store = {self.store}\n"
            f"spool = {root / 'spool'}\n"
            f"outbox = {self.outbox}\n"
            f"{extra}"
            f"\n[listener out]\nlisten = 127.0.0.1:{self.out_port}\n"
            f"role = outgoing\nrelay_from = {relay_from}\n"
            f"profile = org\n"
            f"\n[listener in]\nlisten = 127.0.0.1:{self.in_port}\n"
            f"role = incoming\nlocal_domains = example.org\n"
            f"relay_from = {relay_from}\n"
            f"\n[profile org]\nsigner = org\n{profile}")

    def cli(self, *args, check=True):
        argv = [str(self.bin), *map(str, args)]
        # store-taking commands: insert --store after the command words
        if args and args[0] in ("cert", "key", "ca"):
            argv = argv[:3] + ["--store", str(self.store)] + argv[3:]
        r = subprocess.run(argv, capture_output=True, timeout=T)
        if check:
            assert r.returncode == 0, r.stderr.decode()
        return r

    def start(self):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(self.bin), "serve", "-c", str(self.conf)],
            stdout=self.logf, stderr=self.logf)
        deadline = time.time() + T
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited: "
                                     + self.log.read_text())
            try:
                socket.create_connection(("127.0.0.1", self.out_port),
                                         timeout=1).close()
                socket.create_connection(("127.0.0.1", self.in_port),
                                         timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("daemon did not listen: "
                             + self.log.read_text())

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=T)
        finally:
            self.logf.close()
        return rc

    def delivered(self, n=1, timeout=T):
        new = self.outbox / "new"
        deadline = time.time() + timeout
        while time.time() < deadline:
            files = sorted(new.glob("*")) if new.exists() else []
            if len(files) >= n:
                return [f.read_bytes() for f in files]
            time.sleep(0.05)
        raise AssertionError(f"{n} message(s) not delivered; log:\n"
                             + self.log.read_text())


def gateways(smimegate, root: Path, graceful=False):
    """The body of the `gateway` fixture (conftest.py): yields make(**kw),
    which creates a Gateway with an organization certificate "org" for
    sender@example.com.  At the end every daemon is stopped by PID: with
    SIGKILL, or with GRACEFUL, SIGTERM, which must stop it with status 0
    (and lets ASan write its leak report).  Every log must be free of
    sanitizer reports."""
    gws = []

    def make(**kw):
        gw = Gateway(smimegate, root / f"gw{len(gws)}", **kw)
        gw.cli("cert", "create", "--name", "org", "--cn", "Example Org",
               "--san-email", "sender@example.com")
        gws.append(gw)
        return gw

    yield make
    problems = []
    for gw in gws:
        if not graceful:
            gw.stop(signal.SIGKILL)
            continue
        if gw.proc is None or gw.proc.poll() is not None:
            continue
        gw.proc.send_signal(signal.SIGTERM)
        try:
            rc = gw.proc.wait(timeout=20)
            if rc != 0:
                problems.append(f"{gw.root}: exit status {rc} on SIGTERM")
        except subprocess.TimeoutExpired:
            gw.proc.kill()
            gw.proc.wait()
            problems.append(f"{gw.root}: did not stop on SIGTERM")
        gw.logf.close()
    for gw in gws:
        if gw.log.exists():
            text = gw.log.read_text(errors="replace")
            assert "Sanitizer" not in text and "runtime error" not in text, \
                text[-4000:]
    assert not problems, problems


def wait_log(gw, needle, n=1, timeout=T, regex=False):
    """Waits until GW's log holds NEEDLE (a substring, or with REGEX a
    pattern) at least N times; returns the log's text."""
    deadline = time.time() + timeout
    while True:
        text = gw.log.read_text(errors="replace")
        found = (len(re.findall(needle, text)) if regex
                 else text.count(needle))
        if found >= n:
            return text
        if time.time() >= deadline:
            raise AssertionError(f"{needle!r} x{n} not in the log:\n"
                                 + text)
        time.sleep(0.05)


def swaks(port, *args, to="rcpt@example.net", frm="sender@example.com"):
    return subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(port),
         "--to", to, "--from", frm, "--helo", "client.test",
         "--header", "Subject: gateway test", *args],
        capture_output=True, timeout=T)


def crlf(data: bytes) -> bytes:
    """SMTP DATA is CRLF; the server refuses bare LF (no smuggling)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def org_cert(gw):
    """The organization's certificate as PEM (self-signed: its own anchor)."""
    pem = gw.root / "org.pem"
    pem.write_bytes(gw.cli("cert", "export", "org", "--pem").stdout)
    return pem
