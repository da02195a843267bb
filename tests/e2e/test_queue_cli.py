"""`smimegate queue`: the administrator's view of the delivery queue, with
the real daemon.  Its smarthost is a port where nothing listens at first,
so messages wait (retry_min = 1h); an aiosmtpd sink comes up on that port
when a test wants them delivered.

list and show read the spool while the daemon runs; flush and delete are
requests the daemon takes on its tick; with the daemon stopped they act
on the spool directly; bounce returns a message to its sender with a
delivery status notification."""
import json
import re
import signal
import subprocess
import time

import pytest

from gateway_util import T, free_port, org_cert, swaks, wait_log
from sink_util import Sink

ID_LEN = 24


@pytest.fixture
def held(gateway, tmp_path):
    """A gateway whose smarthost is down, and a make_sink() that brings
    it up."""
    port = free_port()
    gw = gateway(extra=f"smarthost = 127.0.0.1:{port}\n"
                       "retry_min = 1h\nretry_max = 2h\n").start()
    sinks = []

    def make_sink():
        d = tmp_path / "sink"
        d.mkdir(exist_ok=True)
        sinks.append(Sink(d, port=port))
        return sinks[-1]

    gw.make_sink = make_sink
    yield gw
    for s in sinks:
        s.stop()


def queue(gw, *args, check=None):
    r = subprocess.run([gw.bin, "queue", "-c", str(gw.conf), *map(str, args)],
                       capture_output=True, timeout=T)
    if check is not None:
        assert r.returncode == check, r.stdout.decode() + r.stderr.decode()
    return r


def send(gw, body, to="rcpt@example.net"):
    r = swaks(gw.out_port, "--body", body, to=to)
    assert r.returncode == 0, r.stdout.decode()
    return r


def held_ids(gw, n):
    """The IDs of N messages once each was tried and deferred."""
    wait_log(gw, "event=deferred", n)
    entries = json.loads(queue(gw, "list", "--json", check=0).stdout)
    assert len(entries) == n
    return [e["id"] for e in entries]


def test_list_and_show_the_waiting_messages(held):
    send(held, "First held.", to="one@example.net")
    send(held, "Second held.", to="two@example.net")
    ids = held_ids(held, 2)

    table = queue(held, "list", check=0).stdout.decode().splitlines()
    assert table[0].split()[:4] == ["ID", "RECEIVED", "SIZE", "TRY"]
    assert [ln.split()[0] for ln in table[1:-1]] == ids  # oldest first
    assert re.fullmatch(r"-- 2 messages, \d+ bytes", table[-1]), table[-1]
    for ln in table[1:-1]:
        assert "sender@example.com" in ln
        assert "Connection refused" in ln
        assert ln.split()[3] == "1"

    entries = json.loads(queue(held, "list", "--json", check=0).stdout)
    e = entries[0]
    assert e["attempts"] == 1 and e["mail_from"] == "sender@example.com"
    assert [r["address"] for r in e["recipients"]] == ["one@example.net"]
    assert e["next_try_epoch"] >= time.time() + 3000  # an hour's backoff
    assert "Connection refused" in e["last_error"]
    assert e["listener"] == "out" and e["role"] == "outgoing"
    assert e["size"] > 0

    out = queue(held, "show", ids[1], check=0).stdout.decode()
    assert f"id:          {ids[1]}\n" in out
    assert "to:          <two@example.net>" in out
    assert "attempts:    1\n" in out
    assert "Subject: gateway test" in out
    raw = queue(held, "show", ids[1], "--raw", check=0).stdout
    assert b"Second held." in raw and raw.startswith(b"Received: ")
    shown = json.loads(queue(held, "show", ids[0], "--json",
                             check=0).stdout)
    assert shown["id"] == ids[0] and "Subject: gateway test" in \
        shown["headers"]


def test_flush_delivers_at_once_instead_of_after_the_backoff(held):
    send(held, "Flush me.", to="one@example.net")
    send(held, "Flush us all.", to="two@example.net")
    ids = held_ids(held, 2)
    sink = held.make_sink()

    r = queue(held, "flush", ids[0], check=0)
    assert r.stdout.decode() == f"flushed {ids[0]}\n"
    msgs = sink.messages(1, timeout=20, log=held.log)
    assert b"Flush me." in msgs[0]["data"]
    wait_log(held, f"event=flushed qid={ids[0]} waiting=1")

    r = queue(held, "flush", check=0)
    assert "every waiting message is due now" in r.stdout.decode()
    msgs = sink.messages(2, timeout=20, log=held.log)
    assert b"Flush us all." in msgs[1]["data"]
    v = subprocess.run(["openssl", "cms", "-verify", "-CAfile",
                        org_cert(held)], input=msgs[1]["data"],
                       capture_output=True, timeout=T)
    assert v.returncode == 0, v.stderr.decode()
    wait_log(held, "event=flushed all waiting=1")
    assert json.loads(queue(held, "list", "--json", check=0).stdout) == []


def test_delete_takes_a_message_out_without_a_notice(held):
    send(held, "Delete me.", to="one@example.net")
    send(held, "Keep me.", to="two@example.net")
    gone, kept = held_ids(held, 2)

    r = queue(held, "delete", gone, check=0)
    assert r.stdout.decode() == f"deleted {gone}\n"
    assert f"qid={gone} event=deleted reason=administrator" in \
        held.log.read_text()
    assert [e["id"] for e in json.loads(
        queue(held, "list", "--json", check=0).stdout)] == [kept]
    assert not list((held.root / "spool" / "queue").glob(gone + ".*"))

    # once the next hop is back, only the kept one arrives: no copy and
    # no delivery status notification of the deleted one
    sink = held.make_sink()
    queue(held, "flush", check=0)
    msgs = sink.messages(1, timeout=20, log=held.log)
    time.sleep(2.5)  # a tick more: nothing else comes
    msgs = sink.messages(1, log=held.log)
    assert len(msgs) == 1 and b"Keep me." in msgs[0]["data"]
    assert b"Delete me." not in msgs[0]["data"]

    r = queue(held, "delete", gone, check=1)
    assert f"{gone} is not in the queue" in r.stderr.decode()


def test_bounce_returns_a_message_to_its_sender(held):
    send(held, "Return me.", to="one@example.net")
    [mid] = held_ids(held, 1)

    r = queue(held, "bounce", mid, check=0)
    assert r.stdout.decode() == f"returned {mid} to its sender\n"
    text = wait_log(held, f"qid={mid} event=bounced")
    assert "returned to the sender by the administrator" in text
    assert f"qid={mid} event=bounce-requested" in text
    # the notice waits for the next hop like any message, from <>
    [dsn] = json.loads(queue(held, "list", "--json", check=0).stdout)
    assert dsn["id"] != mid and dsn["mail_from"] == ""
    assert [r["address"] for r in dsn["recipients"]] == \
        ["sender@example.com"]

    sink = held.make_sink()
    queue(held, "flush", check=0)
    [got] = sink.messages(1, timeout=20, log=held.log)
    assert got["from"] == "<>" or got["from"] == ""
    assert got["rcpts"] == ["sender@example.com"]
    data = got["data"].decode(errors="replace")
    assert "Status: 5.7.1" in data
    assert "returned to the sender by the administrator" in data
    assert "one@example.net" in data
    time.sleep(2.5)
    assert len(sink.messages(1, log=held.log)) == 1  # never delivered


def test_bounce_with_the_daemon_stopped_waits_for_its_start(held):
    send(held, "Return me later.", to="one@example.net")
    [mid] = held_ids(held, 1)
    assert held.stop() == 0
    r = queue(held, "bounce", mid, check=0)
    assert "it returns the message to its sender when it starts" in \
        r.stdout.decode()
    held.start()
    wait_log(held, f"qid={mid} event=bounced")
    entries = json.loads(queue(held, "list", "--json", check=0).stdout)
    assert [e["mail_from"] for e in entries] == [""]


def test_with_the_daemon_stopped_they_act_on_the_spool(held):
    send(held, "Delete me offline.", to="one@example.net")
    send(held, "Deliver me at start.", to="two@example.net")
    gone, kept = held_ids(held, 2)
    assert held.stop() == 0

    assert len(json.loads(queue(held, "list", "--json",
                                check=0).stdout)) == 2
    r = queue(held, "delete", gone, check=0)
    assert r.stdout.decode() == f"deleted {gone}\n"
    r = queue(held, "flush", check=0)
    assert r.stdout.decode().startswith("1 message made due; no daemon")
    [e] = json.loads(queue(held, "list", "--json", check=0).stdout)
    assert e["id"] == kept and e["next_try_epoch"] <= time.time()

    # the next start delivers it at once, not an hour later
    sink = held.make_sink()
    held.start()
    msgs = sink.messages(1, timeout=20, log=held.log)
    assert b"Deliver me at start." in msgs[0]["data"]


def test_a_request_the_daemon_does_not_take_in_time_waits_for_it(held):
    send(held, "Frozen.", to="one@example.net")
    [mid] = held_ids(held, 1)
    held.proc.send_signal(signal.SIGSTOP)
    try:
        r = queue(held, "delete", mid, "--wait", "1", check=1)
        assert ("the daemon did not take the request within 1 s; it waits "
                "for it in") in r.stderr.decode()
        assert (held.root / "spool" / "control" / f"delete.{mid}").exists()
    finally:
        held.proc.send_signal(signal.SIGCONT)
    wait_log(held, f"qid={mid} event=deleted reason=administrator")
    assert not (held.root / "spool" / "control" / f"delete.{mid}").exists()
    assert json.loads(queue(held, "list", "--json", check=0).stdout) == []


def test_junk_in_the_control_directory_is_removed_and_logged(held):
    junk = held.root / "spool" / "control" / "rm -rf"
    junk.write_text("")
    wait_log(held, 'event=bad-request name="rm -rf" (removed)')
    assert not junk.exists()
    # a directory named like a request is no request either
    d = held.root / "spool" / "control" / "flush"
    d.mkdir()
    wait_log(held, 'event=bad-request name="flush" (removed)')
    assert not d.exists()
    assert "event=flushed" not in held.log.read_text()


def test_a_damaged_envelope_is_said_not_hidden(held):
    send(held, "Fine.", to="one@example.net")
    [mid] = held_ids(held, 1)
    bad = held.root / "spool" / "queue" / ("0" * 23 + "Z.env")
    (held.root / "spool" / "queue" / ("0" * 23 + "Z.msg")).write_text("x")
    bad.write_text("version 99\n\x00garbage")
    r = queue(held, "list", check=0)
    assert [ln.split()[0] for ln in r.stdout.decode().splitlines()[1:-1]] \
        == [mid]
    assert f"event=bad-envelope id={bad.name[:-4]}" in r.stderr.decode()


@pytest.mark.parametrize("args, reason", [
    ([], "give a command"),
    (["frob"], 'unknown command "frob"'),
    (["show"], "give one ID"),
    (["delete"], "give at least one ID"),
    (["list", "X"], "list takes no ID"),
    (["delete", "not-an-id"], '"not-an-id" is not a queue ID'),
    (["flush", "--json"], "--json is for list and show"),
    (["flush", "--wait", "x"], "--wait wants seconds"),
    (["list", "--wait", "3"], "--wait is for flush, delete and bounce"),
    (["bounce"], "give at least one ID"),
    (["list", "--name", "x"], 'unknown or incomplete option "--name"'),
])
def test_usage_errors(held, args, reason):
    r = queue(held, *args, check=2)
    assert reason in r.stderr.decode(), r.stderr.decode()


def test_no_spool_yet(held, tmp_path):
    r = subprocess.run([held.bin, "queue", "--spool", tmp_path / "none",
                        "flush"], capture_output=True, timeout=T)
    assert r.returncode == 2
    assert "no queue there" in r.stderr.decode()
    assert not (tmp_path / "none").exists()
    r = subprocess.run([held.bin, "queue", "--spool", tmp_path / "none",
                        "show", "0" * ID_LEN], capture_output=True,
                       timeout=T)
    assert r.returncode == 2
