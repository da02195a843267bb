"""Delivery status notifications (RFC 3464) end to end: the real daemon, a
permanent failure on the way out (an encrypting profile, a recipient
without a certificate), and the notification read back from the outbox
maildir with Python's email parser and OpenSSL.  Signed when
notify_signer names a key of the store, unsigned otherwise (seed 000);
never to the null sender; RET=HDRS, ENVID and NOTIFY=NEVER honoured."""
import email
import email.policy
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from gateway_util import crlf, org_cert, wait_log
from sink_util import Sink

REPO = Path(__file__).resolve().parents[2]

T = 60
ENCRYPTING = "mode = sign-encrypt\nmissing_key = bounce\n"


def send(gw, body=b"The secret text.", to="nokey@example.net",
         frm="sender@example.com", mail_options=(), rcpt_options=()):
    msg = (b"From: sender@example.com\r\nTo: " + to.encode() +
           b"\r\nSubject: needs encryption\r\nMessage-ID: <orig@example.com>"
           b"\r\n\r\n" + body + b"\r\n")
    with smtplib.SMTP("127.0.0.1", gw.out_port, timeout=T) as s:
        s.ehlo("client.test")
        s.sendmail(frm, [to], crlf(msg), mail_options=list(mail_options),
                   rcpt_options=list(rcpt_options))


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def report_parts(msg):
    """The three parts of a multipart/report, checked."""
    assert msg.get_content_type() == "multipart/report", msg
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    return parts


def status_fields(part):
    """message/delivery-status: [per-message fields, per-recipient ...]."""
    return [dict(block.items()) for block in part.get_payload()]


def test_permanent_failure_returns_a_dsn(gateway):
    gw = gateway(profile=ENCRYPTING).start()
    send(gw)
    (raw,) = gw.delivered()
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    # The null sender, so it can never bounce back; to the sender.
    assert head.startswith("Return-Path: <>\r\nDelivered-To: "
                           "sender@example.com\r\n"), head
    msg = parse(raw)
    assert msg["To"] == "<sender@example.com>"
    assert msg["From"] == "Mail Delivery System <postmaster@gw.test>"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Message-ID"].endswith("@gw.test>")
    assert msg["Date"]
    parts = report_parts(msg)
    # Unsigned without notify_signer (seed 000), and not signed by the
    # outgoing profile either: the pipeline leaves it as it is.
    assert b"multipart/signed" not in raw and b"pkcs7" not in raw
    text = parts[0].get_payload()
    assert "nokey@example.net" in text
    assert "no encryption certificate for <nokey@example.net>" in text
    per_msg, per_rcpt = status_fields(parts[1])
    assert per_msg["Reporting-MTA"] == "dns; gw.test"
    assert "Arrival-Date" in per_msg
    assert per_rcpt["Final-Recipient"] == "rfc822; nokey@example.net"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "5.7.5"
    assert "no encryption certificate" in per_rcpt["Diagnostic-Code"]
    # The original comes back whole (RET not given), to its sender only.
    assert parts[2].get_content_type() == "message/rfc822"
    orig = parts[2].get_payload()[0]
    assert orig["Message-ID"] == "<orig@example.com>"
    assert "The secret text." in orig.get_payload()
    qid = per_msg["X-Smimegate-Queue-ID"]
    assert f"Queue ID: {qid}" in text
    assert gw.stop() == 0
    log = gw.log.read_text()
    assert f"qid={qid} event=dsn-queued" in log and "signed=no" in log
    assert f"qid={qid} event=bounced" in log
    # Nothing ever went to the recipient.
    assert len(list((gw.outbox / "new").glob("*"))) == 1


def test_notify_signer_signs_the_dsn(gateway):
    gw = gateway(profile=ENCRYPTING, extra="notify_signer = org\n").start()
    send(gw)
    (raw,) = gw.delivered()
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/signed"
    assert msg.get_param("micalg") == "sha-256"
    assert msg["To"] == "<sender@example.com>"
    assert msg["Auto-Submitted"] == "auto-replied"
    body = raw.split(b"\r\n\r\n", 1)[1]
    v = subprocess.run(["openssl", "cms", "-verify", "-CAfile",
                        org_cert(gw)], input=raw, capture_output=True,
                       timeout=T)
    assert v.returncode == 0, v.stderr.decode()
    inner = parse(v.stdout)
    parts = report_parts(inner)
    _, per_rcpt = status_fields(parts[1])
    assert per_rcpt["Final-Recipient"] == "rfc822; nokey@example.net"
    assert body  # the signed content is there
    log = gw.log.read_text()
    assert "signed=yes" in log
    # org is self-signed: allowed, but the log says recipients will not
    # trust it (seed 000).
    assert "event=dsn-signer-self-signed" in log


def test_unusable_signer_sends_unsigned(gateway):
    gw = gateway(profile=ENCRYPTING,
                 extra="notify_signer = nosuch\n").start()
    send(gw)
    (raw,) = gw.delivered()
    report_parts(parse(raw))  # never lost: sent unsigned
    wait_log(gw, "signed=no")
    log = gw.log.read_text()
    assert "event=dsn-unsigned signer=nosuch" in log


def test_null_sender_is_not_bounced(gateway):
    gw = gateway(profile=ENCRYPTING).start()
    send(gw, frm="")
    wait_log(gw, "event=bounced")
    time.sleep(1)  # time enough for a notification to show up
    new = gw.outbox / "new"
    assert not new.exists() or not list(new.glob("*"))
    log = gw.log.read_text()
    assert "dsn=none" in log and "dsn-queued" not in log


def test_ret_hdrs_and_envid(gateway):
    gw = gateway(profile=ENCRYPTING).start()
    send(gw, mail_options=["RET=HDRS", "ENVID=QQ+2B314"])
    (raw,) = gw.delivered()
    parts = report_parts(parse(raw))
    per_msg, _ = status_fields(parts[1])
    assert per_msg["Original-Envelope-Id"] == "QQ+314"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"Message-ID: <orig@example.com>" in raw
    assert b"The secret text." not in raw


def test_large_message_returns_headers_only(gateway):
    gw = gateway(profile=ENCRYPTING).start()
    send(gw, body=b"secret line of text\r\n" * 5000)  # about 100 KB
    (raw,) = gw.delivered()
    parts = report_parts(parse(raw))
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"secret line of text" not in raw
    assert len(raw) < 16 * 1024


def test_notify_never_is_honoured(gateway):
    gw = gateway(profile=ENCRYPTING).start()
    send(gw, rcpt_options=["NOTIFY=NEVER"])
    wait_log(gw, "event=dsn-none reason=notify")
    wait_log(gw, "event=bounced")
    time.sleep(0.5)
    new = gw.outbox / "new"
    assert not new.exists() or not list(new.glob("*"))


@pytest.fixture
def sink(tmp_path):
    """An aiosmtpd next hop that refuses gone@example.net (sink_util)."""
    s = Sink(tmp_path, refuse={"gone@example.net"},
             refuse_text="no such user here")
    yield s
    s.stop()


def next_hop_dsn(got):
    """The one notification among what the sink kept."""
    dsns = [g for g in got if g["from"] in ("", "<>")]  # MAIL FROM:<>
    assert len(dsns) == 1, got
    assert dsns[0]["rcpts"] == ["sender@example.com"]
    return parse(dsns[0]["data"])


@pytest.mark.skipif(not (REPO / "src" / "daemon" / "relay.c").exists(),
                    reason="the SMTP client is not built yet")
def test_next_hop_550_returns_a_dsn(gateway, sink):
    gw = gateway(extra=f"smarthost = 127.0.0.1:{sink.port}\n"
                       "smarthost_tls = none\n").start()
    send(gw, to="gone@example.net")
    msg = next_hop_dsn(sink.messages(1))
    parts = report_parts(msg)
    _, per_rcpt = status_fields(parts[1])
    assert per_rcpt["Final-Recipient"] == "rfc822; gone@example.net"
    assert per_rcpt["Status"] == "5.1.1"  # the next hop's code
    assert per_rcpt["Diagnostic-Code"].startswith("smtp; 550 5.1.1")
    assert "no such user here" in per_rcpt["Diagnostic-Code"]


@pytest.mark.skipif(not (REPO / "src" / "daemon" / "relay.c").exists(),
                    reason="the SMTP client is not built yet")
def test_next_hop_550_for_one_recipient_of_two(gateway, sink):
    gw = gateway(extra=f"smarthost = 127.0.0.1:{sink.port}\n"
                       "smarthost_tls = none\n").start()
    msg = (b"From: sender@example.com\r\nTo: a@example.net, "
           b"gone@example.net\r\nSubject: two\r\n\r\nHello.\r\n")
    with smtplib.SMTP("127.0.0.1", gw.out_port, timeout=T) as s:
        s.sendmail("sender@example.com",
                   ["ok@example.net", "gone@example.net"], msg)
    got = sink.messages(2)
    msg = next_hop_dsn(got)
    # The other recipient got the message ...
    assert any(g["rcpts"] == ["ok@example.net"] for g in got), got
    # ... and the sender hears about the one that failed, only.
    parts = report_parts(msg)
    blocks = status_fields(parts[1])
    assert len(blocks) == 2, blocks
    assert blocks[1]["Final-Recipient"] == "rfc822; gone@example.net"
    assert blocks[1]["Status"] == "5.1.1"


def test_orcpt_is_kept_for_the_dsn(gateway):
    # RCPT ORCPT= goes into the spool with the recipient and comes back
    # in the notification as Original-Recipient (RFC 3461, RFC 3464).
    gw = gateway(profile=ENCRYPTING).start()
    send(gw, rcpt_options=["ORCPT=rfc822;Team+2Bnokey@example.net"])
    (raw,) = gw.delivered()
    parts = report_parts(parse(raw))
    _, per_rcpt = status_fields(parts[1])
    assert per_rcpt["Original-Recipient"] == "rfc822;Team+nokey@example.net"
    assert per_rcpt["Final-Recipient"] == "rfc822; nokey@example.net"


def test_bad_orcpt_is_refused(gateway):
    gw = gateway(profile=ENCRYPTING).start()
    with smtplib.SMTP("127.0.0.1", gw.out_port, timeout=T) as s:
        s.ehlo("client.test")
        s.mail("sender@example.com")
        code, _ = s.rcpt("a@example.net", options=["ORCPT=no-semicolon"])
        assert code == 501
