"""The gateway's SMTP client end to end: the real `smimegate serve` relays
to aiosmtpd sinks on 127.0.0.1 (run by the test in threads, stopped at the
end): a smarthost, a per-domain route, a temporary failure and the retry,
a recipient refused next to one accepted, TLS required from a sink that
cannot do it, opportunistic STARTTLS with a throw-away certificate, and one
connection reused for two messages."""
import subprocess

import pytest

from gateway_util import T, org_cert, swaks, wait_log
from sink_util import Sink


@pytest.fixture
def sinks(tmp_path):
    made = []

    def make(**kw):
        d = tmp_path / f"sink{len(made)}"
        d.mkdir()
        s = Sink(d, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def relay_gw(gateway):
    def make(extra):
        return gateway(
            extra="retry_min = 1s\nretry_max = 2s\n" + extra).start()
    return make


def relay_lines(gw):
    return [ln for ln in gw.log.read_text().splitlines()
            if ": relay: " in ln]


def spooled(gw):
    q = gw.root / "spool" / "queue"
    return sorted(q.glob("*.env")) if q.exists() else []


def send(gw, body, to="rcpt@example.net"):
    r = swaks(gw.out_port, "--body", body, to=to)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert b"250 2.0.0" in r.stdout


def verify(gw, data, text):
    v = subprocess.run(["openssl", "cms", "-verify", "-CAfile",
                        org_cert(gw)], input=data, capture_output=True,
                       timeout=T)
    assert v.returncode == 0, v.stderr.decode()
    assert text.encode() in v.stdout


def test_signed_message_reaches_the_smarthost(relay_gw, sinks):
    sink = sinks()
    gw = relay_gw(f"smarthost = {sink.address}\n")
    send(gw, "Through the smarthost.")
    (m,) = sink.messages(log=gw.log)
    assert m["from"] == "sender@example.com"
    assert m["rcpts"] == ["rcpt@example.net"]
    assert b"multipart/signed" in m["data"]
    assert b"Return-Path:" not in m["data"]  # that is the final MTA's
    assert any(o.startswith("SIZE=") for o in m["options"])
    verify(gw, m["data"], "Through the smarthost.")
    wait_log(gw, "event=delivered reply=\"250 2.0.0 Ok: queued as SINK\"")
    assert gw.stop() == 0
    (line,) = relay_lines(gw)
    assert f"nexthop={sink.address} tls=no verified=no rcpts=1 " \
           "reply=\"250 2.0.0 Ok: queued as SINK\" event=delivered" in line
    assert not spooled(gw)
    assert not (gw.outbox / "new").exists() or \
        not list((gw.outbox / "new").iterdir())


def test_route_sends_its_domain_to_its_next_hop(relay_gw, sinks):
    smart, routed = sinks(), sinks()
    gw = relay_gw(f"smarthost = {smart.address}\n"
                  f"\n[route partner]\ndomains = example.org, example.info\n"
                  f"nexthop = {routed.address}\ntls = none\n")
    send(gw, "One message, two next hops.",
         to="a@example.net,b@EXAMPLE.org,c@example.info")
    (m1,) = smart.messages(log=gw.log)
    (m2,) = routed.messages(log=gw.log)
    assert m1["rcpts"] == ["a@example.net"]
    assert m2["rcpts"] == ["b@EXAMPLE.org", "c@example.info"]
    verify(gw, m1["data"], "One message, two next hops.")
    verify(gw, m2["data"], "One message, two next hops.")
    wait_log(gw, "queue: qid=")
    assert gw.stop() == 0
    lines = relay_lines(gw)
    assert len(lines) == 2
    assert any(f"nexthop={routed.address}" in ln and "rcpts=2" in ln
               for ln in lines)
    assert not spooled(gw)


def test_temporary_failure_is_retried(relay_gw, sinks):
    sink = sinks(temp_data=1)
    gw = relay_gw(f"smarthost = {sink.address}\n")
    send(gw, "Second time lucky.")
    (m,) = sink.messages(log=gw.log)
    verify(gw, m["data"], "Second time lucky.")
    text = wait_log(gw, "event=delivered reply=")
    assert "reply=\"451 4.3.0 Try again later\" event=deferred" in text
    assert "event=deferred reply=\"451 4.3.0 Try again later\"" in text
    assert sink.handler.data_calls == 2
    assert gw.stop() == 0
    assert not spooled(gw)


def test_refused_recipient_is_reported_the_other_delivered(relay_gw, sinks):
    sink = sinks(refuse={"bad@example.net"})
    gw = relay_gw(f"smarthost = {sink.address}\n")
    send(gw, "One of two.", to="good@example.net,bad@example.net")
    # the message for the good one, and the notification of the bad one
    # (from the null sender, through the same smarthost)
    msgs = sink.messages(2, log=gw.log)
    (m,) = [x for x in msgs if x["from"] == "sender@example.com"]
    assert m["rcpts"] == ["good@example.net"]
    verify(gw, m["data"], "One of two.")
    (dsn,) = [x for x in msgs if x["from"] in ("", "<>")]
    assert dsn["rcpts"] == ["sender@example.com"]
    assert b"bad@example.net" in dsn["data"]
    assert b"good@example.net" not in dsn["data"].split(b"\r\n\r\n")[1]
    text = wait_log(gw, "event=delivered reply=")
    assert "event=rcpt-failed reply=\"550 5.1.1 <bad@example.net>: " \
           "Recipient address rejected\"" in text
    assert "rcpt=<bad@example.net>" in text
    assert gw.stop() == 0
    assert not spooled(gw)


@pytest.mark.parametrize("sink_tls,why", [
    (False, "does not offer STARTTLS (TLS is required)"),
    (True, "not verified"),  # a self-signed next hop: see docs/daemon.md
])
def test_required_tls_defers(relay_gw, sinks, sink_tls, why):
    sink = sinks(tls=sink_tls)
    gw = relay_gw(f"smarthost = {sink.address}\nsmarthost_tls = required\n")
    send(gw, "Only over verified TLS.")
    text = wait_log(gw, "queue: qid=")
    wait_log(gw, "event=deferred")
    text = gw.log.read_text()
    assert why in text
    assert "event=deferred" in text and "event=delivered" not in text
    assert gw.stop() == 0
    assert not sink.handler.messages
    assert len(spooled(gw)) == 1  # kept for later, not bounced


def test_opportunistic_tls_is_used_when_offered(relay_gw, sinks):
    sink = sinks(tls=True)
    gw = relay_gw(f"smarthost = {sink.address}\nworkers = 1\n")
    send(gw, "Over STARTTLS.")
    (m,) = sink.messages(log=gw.log)
    assert m["tls"] is True
    verify(gw, m["data"], "Over STARTTLS.")
    send(gw, "Again, on the same TLS session.")
    msgs = sink.messages(2, log=gw.log)
    assert msgs[1]["tls"] is True
    assert len(sink.handler.servers) == 1  # the TLS connection was kept
    wait_log(gw, "event=delivered reply=")
    assert gw.stop() == 0
    lines = relay_lines(gw)
    assert len(lines) == 2
    # self-signed: used, and reported as not verified
    assert all("tls=yes verified=no" in ln and "event=delivered" in ln
               for ln in lines)


def test_connection_is_reused(relay_gw, sinks):
    sink = sinks()
    gw = relay_gw(f"smarthost = {sink.address}\nworkers = 1\n")
    send(gw, "First.")
    sink.messages(1, log=gw.log)
    send(gw, "Second.")
    msgs = sink.messages(2, log=gw.log)
    assert len(msgs) == 2
    assert len(sink.handler.servers) == 1  # one connection for both
    wait_log(gw, "event=delivered reply=")
    assert gw.stop() == 0  # QUIT on the kept connection at exit
    assert len(relay_lines(gw)) == 2
