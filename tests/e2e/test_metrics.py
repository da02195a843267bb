"""Observability end to end: the Prometheus endpoint of the real daemon
(`metrics = host:port`) counts what went through it, serves only GET
/metrics, can be switched on by a reload; `log = syslog` sends the log
away from stderr, or refuses to start when there is no syslog to send
to."""
import os
import signal
import smtplib
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from gateway_util import free_port, swaks

T = 60


def scrape(port, path="/metrics"):
    """(status, content type, {series: value}) of GET PATH."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                timeout=T) as r:
        text = r.read().decode()
        ctype = r.headers.get("Content-Type")
    series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return r.status, ctype, series


def wait_series(port, name, want, timeout=T):
    """The scrape once NAME reached WANT (the queue counts a delivery
    just after the maildir file appears)."""
    deadline = time.time() + timeout
    while True:
        _, _, series = scrape(port)
        if series.get(name) == want or time.time() > deadline:
            return series
        time.sleep(0.05)


def test_metrics_count_messages_and_refusals(gateway):
    port = free_port()
    # relay only from 127.0.0.1: a client at 127.0.0.2 is refused
    gw = gateway(relay_from="127.0.0.1/32",
                 extra=f"metrics = 127.0.0.1:{port}\n").start()
    for i in range(2):
        r = swaks(gw.out_port, "--body", f"Message {i}.")
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    gw.delivered(2)
    with smtplib.SMTP("127.0.0.1", gw.out_port, timeout=T,
                      source_address=("127.0.0.2", 0)) as s:
        s.ehlo("client.test")
        s.mail("sender@example.com")
        code, _ = s.rcpt("rcpt@example.net")
        assert code == 554

    m = wait_series(port, "smimegate_delivered_total", 2)
    assert m["smimegate_messages_received_total"] == 2
    assert m["smimegate_signed_total"] == 2
    assert m["smimegate_encrypted_total"] == 0
    assert m["smimegate_delivered_total"] == 2
    assert m["smimegate_deferred_total"] == 0
    assert m["smimegate_bounced_total"] == 0
    assert m['smimegate_rejected_total{reason="relay_denied"}'] == 1
    assert m['smimegate_rejected_total{reason="too_big"}'] == 0
    assert m["smimegate_sessions_accepted_total"] >= 3
    lat = "smimegate_delivery_latency_seconds"
    assert m[lat + "_count"] == 2
    assert m[lat + '_bucket{le="+Inf"}'] == 2
    assert 0 <= m[lat + "_sum"] < 2 * T
    # cumulative: never decreasing towards +Inf
    buckets = [v for k, v in m.items() if k.startswith(lat + "_bucket")]
    assert buckets == sorted(buckets) and len(buckets) == 14
    assert m["smimegate_queue_size"] == 0
    assert m["smimegate_queue_oldest_seconds"] == 0
    assert "smimegate_sessions_active" in m

    status, ctype, _ = scrape(port)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    for path in ("/", "/metrics/", "/other"):
        with pytest.raises(urllib.error.HTTPError) as e:
            scrape(port, path)
        assert e.value.code == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=T)
    assert e.value.code in (405, 501)
    assert gw.stop() == 0
    log = gw.log.read_text()
    assert f"event=metrics address=127.0.0.1:{port}" in log


def test_queue_gauges_show_a_message_that_waits(gateway):
    # the smarthost is down: the message waits, and its age shows
    port, down = free_port(), free_port()
    gw = gateway(extra=f"metrics = 127.0.0.1:{port}\n"
                       f"smarthost = 127.0.0.1:{down}\n"
                       "retry_min = 1h\nretry_max = 2h\n").start()
    r = swaks(gw.out_port, "--body", "Waiting.")
    assert r.returncode == 0, r.stdout.decode()
    m = wait_series(port, "smimegate_deferred_total", 1)
    assert m["smimegate_queue_size"] == 1
    time.sleep(2.2)
    m = scrape(port)[2]
    assert 2 <= m["smimegate_queue_oldest_seconds"] < T


def test_metrics_size_refusal_and_reload(gateway):
    gw = gateway(extra="max_message_size = 1K\n").start()
    r = swaks(gw.out_port, "--body", "x" * 4096)
    assert r.returncode != 0 and b"552" in r.stdout, r.stdout.decode()
    # no endpoint yet; a reload switches it on, counters kept
    port = free_port()
    text = gw.conf.read_text().replace(
        "max_message_size = 1K\n",
        f"max_message_size = 1K\nmetrics = 127.0.0.1:{port}\n")
    gw.conf.write_text(text)
    gw.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + T
    while "event=reloaded" not in gw.log.read_text():
        assert time.time() < deadline, gw.log.read_text()
        time.sleep(0.05)
    _, _, m = scrape(port)
    assert m['smimegate_rejected_total{reason="too_big"}'] == 1
    assert m["smimegate_messages_received_total"] == 0
    assert gw.stop() == 0


def test_syslog_target(gateway):
    gw = gateway(extra="log = syslog\n")
    if not os.path.exists("/dev/log"):
        # Nowhere to log: refused at start, with the reason on stderr.
        r = subprocess.run([str(gw.bin), "serve", "-c", str(gw.conf)],
                           capture_output=True, timeout=T)
        assert r.returncode != 0
        assert b"/dev/log" in r.stderr, r.stderr.decode()
        return
    gw.start()
    r = swaks(gw.out_port, "--body", "Logged to syslog.")
    assert r.returncode == 0, r.stdout.decode()
    gw.delivered(1)
    assert gw.stop() == 0
    # every line went to syslog: nothing on stderr
    assert gw.log.read_text() == ""


def test_busy_metrics_address(gateway):
    """A metrics address in use stops the start; at a reload it refuses
    the reload, and the running endpoint keeps serving."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    try:
        gw = gateway(extra=f"metrics = 127.0.0.1:{taken}\n")
        r = subprocess.run([str(gw.bin), "serve", "-c", str(gw.conf)],
                           capture_output=True, timeout=T)
        assert r.returncode != 0
        assert f"metrics 127.0.0.1:{taken}".encode() in r.stderr, r.stderr

        port = free_port()
        gw.conf.write_text(gw.conf.read_text().replace(
            f"metrics = 127.0.0.1:{taken}", f"metrics = 127.0.0.1:{port}"))
        gw.start()
        gw.conf.write_text(gw.conf.read_text().replace(
            f"metrics = 127.0.0.1:{port}", f"metrics = 127.0.0.1:{taken}"))
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + T
        while "event=reload-refused" not in gw.log.read_text():
            assert time.time() < deadline, gw.log.read_text()
            time.sleep(0.05)
        assert scrape(port)[0] == 200
        head = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                      method="HEAD")
        with urllib.request.urlopen(head, timeout=T) as resp:
            assert resp.status == 200 and resp.read() == b""
        assert gw.stop() == 0
    finally:
        busy.close()
