"""MX delivery end to end (`smarthost = mx:PORT`, a route's `nexthop =
mx`): the real `smimegate serve` asks a real DNS server, dnsmasq (started
here on 127.0.0.1 with the test's records, stopped by PID), and delivers
to aiosmtpd sinks on 127.0.0.2, 127.0.0.3 and 127.0.0.4 (all on one port:
`mx:PORT` gives the port, as Postfix's `relayhost = domain:port`).

- the MX of lowest preference gets the mail; when it is down, the next;
- a domain without MX records: its own address (the implicit MX);
- no such domain, and a null MX (RFC 7505): failed for good;
- the DNS not answering, and an MX that is ourselves: deferred.
"""
import socket
import subprocess
import time

import pytest

from gateway_util import T, free_port, wait_log
from test_relay import (Sink, relay_gw, relay_lines, send,  # noqa: F401
                        spooled, verify)

DNSMASQ = "/usr/sbin/dnsmasq"  # dnsmasq-base, from scripts/deps.sh

RECORDS = [
    "--mx-host=a.test,mx1.a.test,10",
    "--mx-host=a.test,mx2.a.test,20",
    "--host-record=mx1.a.test,127.0.0.2",
    "--host-record=mx2.a.test,127.0.0.3",
    "--host-record=plain.test,127.0.0.4",
    "--mx-host=null.test,.,0",
    "--mx-host=loop.test,gw.test,10",
    "--host-record=gw.test,127.0.0.5",
]


@pytest.fixture
def dns(tmp_path):
    """dnsmasq answering for *.test only (NXDOMAIN for the rest of .test)."""
    port = free_port()
    log = tmp_path / "dnsmasq.log"
    proc = subprocess.Popen(
        [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null",
         "--no-resolv", "--no-hosts", f"--port={port}",
         "--listen-address=127.0.0.1", "--bind-interfaces", "--user=root",
         "--pid-file=", "--local=/test/", f"--log-facility={log}", *RECORDS],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + T
    while True:  # up once it answers on its port
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(0.2)
            # a minimal query for "test" SOA
            s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                     b"\x04test\x00\x00\x06\x00\x01", ("127.0.0.1", port))
            if s.recvfrom(512)[0][:2] == b"\x12\x34":
                break
        except OSError:
            pass
        finally:
            s.close()
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "dnsmasq did not start"
    yield f"127.0.0.1:{port}"
    proc.kill()
    proc.wait()


@pytest.fixture
def mx_sinks(tmp_path):
    """Sinks on one port at the given loopback addresses."""
    made = []
    port = free_port()

    def make(*hosts):
        for h in hosts:
            d = tmp_path / f"sink-{h}"
            d.mkdir()
            made.append(Sink(d, host=h, port=port))
        return made[-len(hosts):]

    make.port = port
    yield make
    for s in made:
        s.stop()


def gw_mx(relay_gw, dns, port, extra="smarthost = mx:{port}\n"):
    return relay_gw(f"dns_server = {dns}\n" + extra.format(port=port))


def test_lowest_preference_mx_gets_the_mail(relay_gw, dns, mx_sinks):
    mx1, mx2 = mx_sinks("127.0.0.2", "127.0.0.3")
    gw = gw_mx(relay_gw, dns, mx_sinks.port)
    send(gw, "To the best MX.", to="rcpt@A.test")
    (m,) = mx1.messages(log=gw.log)
    assert m["rcpts"] == ["rcpt@A.test"]
    verify(gw, m["data"], "To the best MX.")
    wait_log(gw, "event=delivered")
    assert gw.stop() == 0
    (line,) = relay_lines(gw)
    assert f"nexthop=a.test:{mx_sinks.port} mx=mx1.a.test " in line, line
    assert not mx2.handler.messages
    assert not spooled(gw)


def test_next_mx_when_the_first_is_down(relay_gw, dns, mx_sinks):
    (mx2,) = mx_sinks("127.0.0.3")  # nothing listens on mx1
    gw = gw_mx(relay_gw, dns, mx_sinks.port)
    send(gw, "To the backup MX.", to="rcpt@a.test")
    (m,) = mx2.messages(log=gw.log)
    verify(gw, m["data"], "To the backup MX.")
    wait_log(gw, "event=delivered")
    assert gw.stop() == 0
    assert "mx=mx2.a.test" in relay_lines(gw)[0]


def test_domain_without_mx_takes_mail_at_its_address(relay_gw, dns,
                                                     mx_sinks):
    (host,) = mx_sinks("127.0.0.4")
    gw = gw_mx(relay_gw, dns, mx_sinks.port,
               "\n[route plain]\ndomains = plain.test\nnexthop = mx:{port}\n")
    send(gw, "The implicit MX.", to="rcpt@plain.test")
    (m,) = host.messages(log=gw.log)
    verify(gw, m["data"], "The implicit MX.")
    wait_log(gw, "event=delivered")
    assert gw.stop() == 0


@pytest.mark.parametrize("domain,why", [
    ("nx.test", "no such domain nx.test (MX lookup)"),
    ("null.test", "null.test accepts no mail (null MX)"),
])
def test_domain_that_takes_no_mail_fails_for_good(relay_gw, dns, mx_sinks,
                                                  domain, why):
    gw = gw_mx(relay_gw, dns, mx_sinks.port)
    send(gw, "Nowhere to go.", to=f"rcpt@{domain}")
    text = wait_log(gw, f"nexthop={domain}:")
    line = [ln for ln in relay_lines(gw) if f"nexthop={domain}:" in ln][0]
    assert why in line and "event=failed" in line, text
    assert gw.stop() == 0


@pytest.mark.parametrize("domain,why", [
    ("a.test", "MX lookup of a.test: no answer from the DNS"),
    ("loop.test", "mail for loop.test loops back to myself"),
])
def test_dns_down_or_mx_loop_defers(relay_gw, dns, mx_sinks, domain, why):
    server = dns if domain == "loop.test" else f"127.0.0.1:{free_port()}"
    gw = gw_mx(relay_gw, server, mx_sinks.port)
    send(gw, "Later.", to=f"rcpt@{domain}")
    text = wait_log(gw, "event=deferred", timeout=60)
    assert why in text, text
    assert "event=delivered" not in text and "event=failed" not in text
    assert gw.stop() == 0
    assert len(spooled(gw)) == 1
