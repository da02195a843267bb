"""Mail flow policies ([flow NAME], docs/config.md) against the real
`smimegate serve` daemon, over sockets.

All of 127.0.0.0/8 lives on lo, so a client can bind 127.0.0.2 and,
with relay_from = 127.0.0.1/32, be an outsider of the listeners.

    reject by sender domain      550 5.7.1 at MAIL, naming the flow; the
                                 same session sends another sender's mail
    relay by client network      an outsider relays through the outgoing
                                 listener and its mail leaves signed;
                                 without the flow it gets 554 5.7.1
    relay / reject by HELO       glob patterns, any case
    accept                       local domains only: relay_from does not
                                 make it a relay
    the envelope                 the flow's name in the spool's envelope
                                 and in the log (event=flow)
    check-config                 a malformed [flow] names FILE:LINE
"""
import re
import smtplib
import socket
import subprocess
import time

import pytest

from gateway_util import T, gateways, org_cert, wait_log

SENDER = "sender@example.com"
OUTSIDER = "127.0.0.2"  # not in relay_from = 127.0.0.1/32


@pytest.fixture
def make_gw(smimegate, tmp_path):
    """Stopped with SIGTERM, which must succeed (and lets ASan report)."""
    yield from gateways(smimegate, tmp_path, graceful=True)


def with_flows(gw, flows):
    """Appends FLOWS (section text) after the listeners and profile."""
    gw.conf.write_text(gw.conf.read_text() + "\n" + flows)
    return gw


class Raw:
    """A raw SMTP client from address SRC: (code, text) replies."""

    def __init__(self, port, src="127.0.0.1", helo="client.test"):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=T,
                                             source_address=(src, 0))
        self.buf = b""
        code, text = self.reply()
        assert code == 220, text
        code, text = self.cmd(f"EHLO {helo}")
        assert code == 250, text

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed; pending {self.buf!r}")
                self.buf += chunk
            ln, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(ln)
            if len(ln) == 3 or ln[3:4] == b" ":
                return int(ln[:3]), b"\r\n".join(lines).decode()

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def send_mail(self, frm, rcpt, text):
        assert self.cmd(f"MAIL FROM:<{frm}>")[0] == 250
        code, reply = self.cmd(f"RCPT TO:<{rcpt}>")
        assert code == 250, reply
        assert self.cmd("DATA")[0] == 354
        self.sock.sendall(f"From: {frm}\r\nTo: {rcpt}\r\nSubject: flow\r\n"
                          f"\r\n{text}\r\n.\r\n".encode())
        code, reply = self.reply()
        assert code == 250, reply
        return reply

    def close(self):
        try:
            self.cmd("QUIT")
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def swaks_from(port, src, helo="client.test", to="rcpt@example.net",
               frm=SENDER, body="flow test"):
    return subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(port),
         "--local-interface", src, "--to", to, "--from", frm,
         "--helo", helo, "--header", "Subject: flow test", "--body", body],
        capture_output=True, timeout=T)


def log_lines(gw, event):
    return [ln for ln in gw.log.read_text().splitlines()
            if f"event={event} " in ln + " "]


def test_reject_flow_by_sender_domain(make_gw):
    gw = with_flows(make_gw(),
                    "[flow blocked]\n"
                    "sender_domains = spam.example, .spam.example\n"
                    "action = reject\n").start()
    with Raw(gw.in_port) as r:
        for frm in ("x@spam.example", "x@MX.Spam.Example"):
            code, text = r.cmd(f"MAIL FROM:<{frm}>")
            assert code == 550 and "5.7.1" in text and "blocked" in text, \
                text
            # no transaction was started
            assert r.cmd("RCPT TO:<bob@example.org>")[0] == 503
        # a look-alike domain is not the blocked one, and the session
        # goes on: another sender's mail gets through
        r.send_mail("alice@notspam.example", "bob@example.org",
                    "after a refused sender")
        # and then the blocked one is still refused
        code, text = r.cmd("MAIL FROM:<y@spam.example>")
        assert code == 550, text
    # the null sender has no domain: not this flow's
    with Raw(gw.in_port) as r:
        r.send_mail("", "bob@example.org", "a bounce")
    msgs = gw.delivered(2)
    assert len(msgs) == 2
    assert all(b"Delivered-To: bob@example.org" in m for m in msgs)
    assert any(b"after a refused sender" in m for m in msgs)
    rejects = log_lines(gw, "flow")
    assert len(rejects) == 3, rejects  # once per MAIL
    assert all("flow=blocked action=reject" in ln for ln in rejects)
    time.sleep(0.3)
    assert len(list((gw.outbox / "new").glob("*"))) == 2


def test_relay_flow_lets_a_listed_network_relay(make_gw):
    gw = with_flows(make_gw(relay_from="127.0.0.1/32"),
                    "[flow branch]\n"
                    "listeners = out\n"
                    f"clients = {OUTSIDER}/32, 2001:db8::/32\n"
                    "action = relay\n").start()
    r = swaks_from(gw.out_port, OUTSIDER, body="Signed for the branch.")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    (msg,) = gw.delivered()
    assert b"multipart/signed" in msg
    v = subprocess.run(["openssl", "cms", "-verify", "-CAfile", org_cert(gw)],
                       input=msg, capture_output=True, timeout=T)
    assert v.returncode == 0, v.stderr.decode()
    assert b"Signed for the branch." in v.stdout
    wait_log(gw, r"event=flow flow=branch action=relay from=<sender@",
             timeout=10, regex=True)
    wait_log(gw, r"event=queued qid=\S+ .* flow=branch", timeout=10,
             regex=True)

    # Another outsider is not in the flow: no relay (no signing oracle).
    r = swaks_from(gw.out_port, "127.0.0.3")
    assert r.returncode != 0 and b"554 5.7.1" in r.stdout, r.stdout.decode()
    # The flow is the out listener's only: the incoming one does not
    # relay for the branch.
    r = swaks_from(gw.in_port, OUTSIDER)
    assert r.returncode != 0 and b"554 5.7.1" in r.stdout, r.stdout.decode()
    # The listed client with relay_from's client: still fine.
    r = swaks_from(gw.out_port, "127.0.0.1", body="from relay_from")
    assert r.returncode == 0, r.stdout.decode()
    assert len(gw.delivered(2)) == 2


def test_without_the_flow_the_outsider_is_refused(make_gw):
    gw = make_gw(relay_from="127.0.0.1/32").start()
    r = swaks_from(gw.out_port, OUTSIDER)
    assert r.returncode != 0 and b"554 5.7.1" in r.stdout, r.stdout.decode()
    assert "event=flow" not in gw.log.read_text()
    assert "event=relay-denied" in gw.log.read_text()
    # relay_from still relays
    r = swaks_from(gw.out_port, "127.0.0.1")
    assert r.returncode == 0, r.stdout.decode()
    gw.delivered()


def test_helo_pattern_flows(make_gw):
    gw = with_flows(make_gw(relay_from="127.0.0.1/32"),
                    "[flow bad-helo]\nhelo = *.bad.example\n"
                    "action = reject\n"
                    "[flow partners]\nhelo = *.partner.example, "
                    "mx.other.example\nlisteners = out\n"
                    "action = relay\n").start()
    # a HELO glob, in any case, lets the outsider relay
    r = swaks_from(gw.out_port, OUTSIDER, helo="MX1.Partner.Example")
    assert r.returncode == 0, r.stdout.decode()
    gw.delivered(1)
    # the bare domain is not "*.partner.example"
    r = swaks_from(gw.out_port, OUTSIDER, helo="partner.example")
    assert r.returncode != 0 and b"554 5.7.1" in r.stdout, r.stdout.decode()
    # a pattern without '*' is one name exactly
    r = swaks_from(gw.out_port, OUTSIDER, helo="mx1.other.example")
    assert r.returncode != 0 and b"554 5.7.1" in r.stdout, r.stdout.decode()
    # a rejected HELO is refused at MAIL on both listeners, even from
    # relay_from
    for port in (gw.out_port, gw.in_port):
        with Raw(port, helo="host.bad.example") as c:
            code, text = c.cmd(f"MAIL FROM:<{SENDER}>")
            assert code == 550 and "5.7.1" in text and "bad-helo" in text
            # a new EHLO is a new HELO: the flow no longer matches
            assert c.cmd("EHLO good.test")[0] == 250
            c.send_mail(SENDER, "bob@example.org", "after a new EHLO")
    assert len(gw.delivered(3)) == 3
    assert len(log_lines(gw, "flow")) == 3  # partners once, bad-helo twice


def test_accept_flow_is_local_delivery_only(make_gw):
    """accept: the local domains of an incoming listener, nothing else;
    relay_from does not make the client a relay."""
    gw = with_flows(make_gw(),  # relay_from = 127.0.0.0/8, ::1
                    "[flow local-only]\nclients = 127.0.0.1\n"
                    "action = accept\n").start()
    with Raw(gw.in_port) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        code, text = r.cmd("RCPT TO:<victim@example.net>")
        assert code == 554 and "5.7.1" in text, text
        assert r.cmd("RCPT TO:<bob@example.org>")[0] == 250
        assert r.cmd("RSET")[0] == 250
    with Raw(gw.out_port) as r:
        assert r.cmd(f"MAIL FROM:<{SENDER}>")[0] == 250
        for rcpt in ("anyone@example.net", "bob@example.org"):
            code, text = r.cmd(f"RCPT TO:<{rcpt}>")
            assert code == 554 and "Relay access denied" in text, text
    # a client the flow does not name: the listener's rules (relay_from)
    r = swaks_from(gw.out_port, OUTSIDER, body="not the flow's")
    assert r.returncode == 0, r.stdout.decode()
    (msg,) = gw.delivered()
    assert b"multipart/signed" in msg
    assert re.search(r"event=relay-denied rcpt=<victim@example.net> "
                     r"flow=local-only", gw.log.read_text())


def test_envelope_records_the_flow(make_gw):
    """The flow that accepted a message is in its spool envelope (the
    outbox is broken, so the message stays queued)."""
    gw = with_flows(make_gw(relay_from="127.0.0.1/32",
                            extra="retry_min = 1h\nretry_max = 2h\n"),
                    "[flow branch]\nclients = 127.0.0.2\n"
                    "action = relay\n")
    gw.outbox.mkdir()
    (gw.outbox / "new").write_text("not a directory")  # delivery fails
    gw.start()
    r = swaks_from(gw.out_port, OUTSIDER, body="kept in the spool")
    assert r.returncode == 0, r.stdout.decode()
    r = swaks_from(gw.out_port, "127.0.0.1", body="no flow")
    assert r.returncode == 0, r.stdout.decode()
    deadline = time.time() + 10
    envs = []
    while time.time() < deadline:
        envs = [p.read_text() for p in
                (gw.root / "spool" / "queue").glob("*.env")]
        if len(envs) == 2 and all("last_error" in e for e in envs):
            break
        time.sleep(0.1)
    assert len(envs) == 2, envs
    flows = sorted(re.findall(r"^flow (\S+)$", "\n".join(envs), re.M))
    assert flows == ["branch"], envs
    (with_flow,) = [e for e in envs if "\nflow " in e]
    assert "\nclient 127.0.0.2\n" in with_flow


def test_check_config_names_the_line(make_gw):
    gw = make_gw()
    good = gw.conf.read_text()

    def check(extra):
        gw.conf.write_text(good + "\n" + extra)
        r = subprocess.run([str(gw.bin), "check-config", "-c",
                            str(gw.conf)], capture_output=True, timeout=T)
        return r.returncode, r.stderr.decode()

    base = len((good + "\n").splitlines())
    rc, err = check("[flow f]\naction = sometimes\n")
    assert rc == 2 and f"{gw.conf}:{base + 2}:" in err, err
    assert "accept, relay, reject" in err
    rc, err = check("[flow f]\naction = relay\nclients = 10.0.0.0/40\n")
    assert rc == 2 and f"{gw.conf}:{base + 3}:" in err, err
    rc, err = check("[flow f]\naction = relay\nlisteners = out, nowhere\n")
    assert rc == 2 and f"{gw.conf}:{base + 3}:" in err, err
    assert "nowhere" in err
    rc, err = check("[flow f]\naction = reject\n[flow f]\naction = relay\n")
    assert rc == 2 and f"{gw.conf}:{base + 3}: [flow f] appears twice" \
        in err, err
    rc, err = check("[flow f]\nclients = 10.0.0.0/8\n")
    assert rc == 2 and "[flow f] needs action" in err, err
    rc, err = check("[flow f]\nlisteners = out, in\nclients = 10.0.0.0/8\n"
                    "helo = *.example\nsender_domains = .example.com\n"
                    "action = relay\nsmime_decrypt_verify = off\n"
                    "signature = remove\nharvest = on\n")
    assert rc == 0, err


def test_smtplib_client_through_a_relay_flow(make_gw):
    """A plain smtplib client (well behaved) from an IPv4 outsider."""
    gw = with_flows(make_gw(relay_from="::1"),
                    "[flow lan]\nclients = 127.0.0.0/8\n"
                    "action = relay\n").start()
    with smtplib.SMTP("127.0.0.1", gw.out_port, timeout=T,
                      source_address=(OUTSIDER, 0)) as s:
        s.sendmail(SENDER, ["someone@example.net"],
                   b"Subject: lan\r\n\r\nfrom the lan\r\n")
    (msg,) = gw.delivered()
    assert b"from the lan" in msg and b"multipart/signed" in msg


def test_flow_switches_smime_processing_off_and_removes_signatures(make_gw,
                                                                   pki):
    """smime_decrypt_verify = off: S/MIME mail from that flow's clients
    is delivered as it came (no Authentication-Results); signature =
    remove on a flow overrides the listener's keep."""
    from gateway_util import crlf
    from smime_util import mime_entity, openssl_sign
    gw = with_flows(make_gw(), (
        "[flow partner-archive]\nlisteners = in\nsender_domains = "
        "archive.example\naction = accept\nsmime_decrypt_verify = off\n"
        "\n[flow partner]\nlisteners = in\nsender_domains = example.com\n"
        "action = accept\nsignature = remove\n"))
    gw.cli("ca", "import", pki / "root.pem")
    gw.start()
    signed = openssl_sign(pki, mime_entity(
        b"Content-Type: text/plain\r\n\r\nFrom a partner.\r\n"),
        from_="alice@example.com", to="bob@example.org")
    with smtplib.SMTP("127.0.0.1", gw.in_port, timeout=T) as s:
        s.sendmail("alice@archive.example", ["bob@example.org"],
                   crlf(signed))
    (as_is,) = gw.delivered()
    assert b"Authentication-Results" not in as_is.split(b"\r\n\r\n")[0]
    assert b"multipart/signed" in as_is
    with smtplib.SMTP("127.0.0.1", gw.in_port, timeout=T) as s:
        s.sendmail("alice@example.com", ["bob@example.org"], crlf(signed))
    msgs = gw.delivered(2)
    (removed,) = [m for m in msgs if m != as_is]
    head = removed.split(b"\r\n\r\n", 1)[0]
    assert b"smime=pass" in head and b"multipart/signed" not in head
    assert b"From a partner." in removed
    log = gw.log.read_text()
    assert "decision=pass-through reason=flow flow=partner-archive" in log
