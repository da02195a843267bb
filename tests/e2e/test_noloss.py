"""A 250 is a promise: no accepted message is ever lost.

Client threads (smtplib, CRLF data) send N messages, each with its own
Message-ID, into the outgoing listener of a real `smimegate serve` whose
next hop is the maildir outbox.  While they flow the daemon is killed with
SIGKILL at random moments and started again on the same configuration and
spool.  A message whose transaction did not end with a 250 is sent again
after the restart.  At the end the queue must drain and every Message-ID
that got a 250 must be in outbox/new (lost = 0).  Duplicates (the daemon
died after its commit but before the client read the 250) are allowed;
they are counted and printed.

The bounded run sends N=200 with 4 kills; SMIMEGATE_SOAK=1 adds a soak
run with N=2000 and more kills (not part of `make test`).  The random
schedule is printed; SMIMEGATE_SEED=N replays it.

Also: the next hop down and back.  The outbox cannot be written, messages
are accepted and deferred, the outbox is fixed, and every one is
delivered by the retry without a restart.
"""
import os
import random
import re
import signal
import smtplib
import subprocess
import threading
import time

import pytest

from gateway_util import org_cert

T = 60
FAST_RETRY = "retry_min = 1s\nretry_max = 2s\n"
MSGID = re.compile(rb"^Message-ID:\s*<(noloss-\d+)@smimegate\.test>\s*$",
                   re.IGNORECASE | re.MULTILINE)


@pytest.fixture
def make_gw(gateway):
    return gateway


def message(i: int) -> bytes:
    return (f"From: sender@example.com\r\n"
            f"To: rcpt@example.net\r\n"
            f"Subject: noloss {i}\r\n"
            f"Message-ID: <noloss-{i}@smimegate.test>\r\n"
            f"Content-Type: text/plain\r\n"
            f"\r\n"
            f"Body of message {i}.\r\n"
            f"{'x' * (i % 300)}\r\n").encode()


def outbox_ids(gw):
    """Message-ID -> list of files in outbox/new."""
    ids = {}
    new = gw.outbox / "new"
    if not new.exists():
        return ids
    for f in new.iterdir():
        data = f.read_bytes()
        head = data.split(b"\r\n\r\n", 1)[0]
        m = MSGID.search(head)
        key = m.group(1).decode() if m else f"<unparsable {f.name}>"
        ids.setdefault(key, []).append(f)
    return ids


def spool_pending(gw):
    q = gw.root / "spool" / "queue"
    return sorted(p.name for p in q.glob("*.env")) if q.exists() else []


class Clients:
    """Sender threads sharing a work list; each message is retried until
    it gets a 250 or a permanent (5xx) reply, or its deadline passes."""

    def __init__(self, port, n, threads, seed, pace):
        self.port = port
        self.todo = list(range(n))
        self.lock = threading.Lock()
        self.acked = set()       # got a 250 to its DATA
        self.permanent = {}      # i -> 5xx reply: never acceptable here
        self.gave_up = {}        # i -> last error
        self.attempts = 0
        self.retries = 0
        self.tries = {}          # i -> transactions tried
        self.pace = pace
        self.rng = random.Random(seed)
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(threads)]
        self.done = threading.Event()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self, timeout):
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.time()))
        self.done.set()
        return not any(t.is_alive() for t in self.threads)

    def active(self):
        return any(t.is_alive() for t in self.threads)

    def next(self):
        with self.lock:
            return self.todo.pop(0) if self.todo else None

    def run(self):
        conn = None
        with self.lock:
            rng = random.Random(self.rng.random())
        while (i := self.next()) is not None:
            deadline = time.time() + T
            data = message(i)
            first = True
            while True:
                if not first:
                    with self.lock:
                        self.retries += 1
                first = False
                with self.lock:
                    self.attempts += 1
                    self.tries[i] = self.tries.get(i, 0) + 1
                try:
                    if conn is None:
                        conn = smtplib.SMTP("127.0.0.1", self.port,
                                            timeout=10)
                        conn.ehlo("client.test")
                    conn.sendmail("sender@example.com",
                                  ["rcpt@example.net"], data)
                    with self.lock:
                        self.acked.add(i)
                    break
                except (smtplib.SMTPResponseException,
                        smtplib.SMTPRecipientsRefused,
                        smtplib.SMTPSenderRefused) as e:
                    code = getattr(e, "smtp_code", None)
                    if code is None and hasattr(e, "recipients"):
                        code = next(iter(e.recipients.values()))[0]
                    if code is not None and 500 <= code < 600:
                        with self.lock:
                            self.permanent[i] = repr(e)
                        break
                    err = e
                except (OSError, smtplib.SMTPException) as e:
                    err = e
                # no 250: the connection is suspect; send it again
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
                if time.time() > deadline:
                    with self.lock:
                        self.gave_up[i] = repr(err)
                    break
                time.sleep(0.05)
            if self.pace:
                time.sleep(rng.uniform(0, self.pace))
        if conn is not None:
            try:
                conn.quit()
            except Exception:
                pass


def run_noloss(make_gw, n, kills, threads, pace, drain_timeout):
    seed = int(os.environ.get("SMIMEGATE_SEED") or time.time_ns() % 10**9)
    rng = random.Random(seed)
    print(f"\nnoloss: N={n} kills={kills} threads={threads} "
          f"seed={seed} (SMIMEGATE_SEED={seed} replays the schedule)")
    gw = make_gw(extra=FAST_RETRY).start()

    clients = Clients(gw.out_port, n, threads, seed, pace).start()
    kills_in_flight = 0
    schedule = []
    for _ in range(kills):
        delay = rng.uniform(0.2, 1.5)
        schedule.append(round(delay, 3))
        time.sleep(delay)
        if clients.active():
            kills_in_flight += 1
        assert gw.proc.poll() is None, \
            "daemon died by itself:\n" + gw.log.read_text()[-4000:]
        gw.stop(signal.SIGKILL)
        gw.start()
    print(f"noloss: kill delays {schedule}, "
          f"{kills_in_flight} while clients were sending")

    assert clients.join(timeout=T + 30), "client threads hung"
    assert not clients.permanent, \
        f"5xx replies to valid messages: {clients.permanent}"
    assert not clients.gave_up, \
        f"messages never accepted: {clients.gave_up}\n" \
        + gw.log.read_text()[-4000:]
    assert len(clients.acked) == n

    # Drain: every acknowledged Message-ID in the outbox, the spool empty.
    deadline = time.time() + drain_timeout
    while time.time() < deadline:
        ids = outbox_ids(gw)
        if clients.acked <= {int(k.split("-")[1]) for k in ids
                             if k.startswith("noloss-")} \
                and not spool_pending(gw):
            break
        time.sleep(0.2)
    ids = outbox_ids(gw)
    delivered = {int(k.split("-")[1]) for k in ids if k.startswith("noloss-")}
    lost = sorted(clients.acked - delivered)
    dups = {k: len(v) for k, v in ids.items() if len(v) > 1}
    strays = sorted(k for k in ids if not k.startswith("noloss-"))
    # a duplicate of a message sent once was delivered twice (killed
    # between the delivery and the spool removal); one sent again after
    # a lost 250 may be either
    resent = sum(1 for k in dups if clients.tries.get(int(k[7:]), 0) > 1)
    print(f"noloss: attempts={clients.attempts} retries={clients.retries} "
          f"acked={len(clients.acked)} delivered={len(delivered)} "
          f"files={sum(len(v) for v in ids.values())} lost={len(lost)} "
          f"duplicates={sum(v - 1 for v in dups.values())} "
          f"(of messages sent again: {resent}, sent once: "
          f"{len(dups) - resent}) {sorted(dups.items())[:20]}")

    assert not lost, f"{len(lost)} acknowledged message(s) lost: " \
        f"{lost[:50]}\nspool: {spool_pending(gw)[:20]}\n" \
        + gw.log.read_text()[-4000:]
    assert not strays, f"unparsable or foreign files in the outbox: {strays}"
    assert not spool_pending(gw), \
        f"queue did not drain: {spool_pending(gw)[:20]}"

    # Every delivered file is whole: signed, its own body inside, the
    # closing boundary at the end; a sample verifies with OpenSSL.
    files = [(k, f) for k, v in ids.items() for f in v]
    for k, f in files:
        data = f.read_bytes()
        i = int(k.split("-")[1])
        assert b"multipart/signed" in data, f"{f}: not signed"
        assert f"Body of message {i}.".encode() in data, f"{f}: wrong body"
        assert re.search(rb"\r\n--[^\r\n]+--\r\n$", data), f"{f}: truncated"
    cert = org_cert(gw)
    for k, f in random.Random(seed).sample(files, min(10, len(files))):
        v = subprocess.run(["openssl", "cms", "-verify", "-CAfile", cert],
                           input=f.read_bytes(), capture_output=True,
                           timeout=T)
        assert v.returncode == 0, f"{f}: {v.stderr.decode()}"

    # A clean stop after all this: exit 0, no sanitizer report (fixture).
    assert gw.stop() == 0, gw.log.read_text()[-4000:]
    assert kills_in_flight >= 1, \
        "no kill happened while clients were sending; the test proved " \
        "nothing (increase N or the pace)"


def test_no_acknowledged_message_lost_across_sigkill(make_gw):
    # 8 threads x 25 messages with up to 0.45 s between them: about 6 s
    # of submission, so the kills (0.2-1.5 s apart) land while mail flows
    # in and while the queue runner delivers.
    run_noloss(make_gw, n=200, kills=4, threads=8, pace=0.45,
               drain_timeout=T)


@pytest.mark.skipif(not os.environ.get("SMIMEGATE_SOAK"),
                    reason="soak run: set SMIMEGATE_SOAK=1 (N=2000, "
                           "20 kills; about 20-30 s under ASan)")
def test_no_acknowledged_message_lost_soak(make_gw):
    run_noloss(make_gw, n=2000, kills=20, threads=16, pace=0.2,
               drain_timeout=600)


def test_next_hop_down_then_back(make_gw):
    """The outbox cannot be written: accepted, deferred, kept; fixed:
    all delivered by the retry, with no restart."""
    gw = make_gw(extra=FAST_RETRY)
    gw.outbox.mkdir()
    (gw.outbox / "new").write_text("not a directory")  # delivery fails
    gw.start()
    n = 20
    with smtplib.SMTP("127.0.0.1", gw.out_port, timeout=T) as s:
        for i in range(n):
            s.sendmail("sender@example.com", ["rcpt@example.net"],
                       message(i))  # raises unless 250
    # Every message is tried and deferred, and stays in the spool.
    deadline = time.time() + T
    while time.time() < deadline:
        log = gw.log.read_text()
        tried = set(re.findall(r"qid=(\S+) event=deferred", log))
        if len(tried) >= n:
            break
        time.sleep(0.1)
    log = gw.log.read_text()
    assert len(tried) >= n, "deferrals not logged for every message:\n" \
        + log[-4000:]
    assert "event=delivered" not in log
    assert len(spool_pending(gw)) == n, spool_pending(gw)
    assert not re.search(r"event=(bounced|expired)", log), \
        "a temporary failure must not bounce"
    time.sleep(1.5)  # at least one more retry fails while still down
    assert (gw.outbox / "new").is_file()

    (gw.outbox / "new").unlink()  # the next hop is back
    t0 = time.time()
    gw.delivered(n, timeout=T)
    took = time.time() - t0
    ids = outbox_ids(gw)
    assert sorted(ids) == sorted(f"noloss-{i}" for i in range(n)), ids.keys()
    assert all(len(v) == 1 for v in ids.values()), "duplicates"
    deadline = time.time() + 10
    while spool_pending(gw) and time.time() < deadline:
        time.sleep(0.1)
    assert not spool_pending(gw)
    # retry_max = 2s: everything is back within a few seconds
    assert took < 15, f"delivery after the fix took {took:.1f}s"
    assert gw.proc.poll() is None
    assert gw.stop() == 0
