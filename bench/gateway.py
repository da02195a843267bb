#!/usr/bin/python3
"""smimegate's gateway end to end: messages per second and latency through
the real daemon, next to the RSA signing ceiling and a pipe-style
`openssl cms -sign` per message.

Run through bench/gateway.sh (`make bench-gateway`); bench/README.md,
"Gateway throughput", explains what is measured and how to read it.
Standard library only, plus Postfix's smtp-source and smtp-sink.
"""

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchutil import log, free_port, git_rev, cpu_model, loadavg

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")

BODY = 10240                      # smtp-source -l: the message body
CONCURRENCY = [1, 8, 32]          # smtp-source -s
MODES = [("sign", "sign"), ("sign+encrypt", "sign-encrypt")]
RUN_SECONDS = 2.0 if QUICK else 4.0   # aimed length of one timed run
ROUNDS = 1 if QUICK else 2            # interleaved rounds of all runs
COMMITTERS = [1, 8, 32]               # spool_commit threads
COMMIT_SECONDS = 1.0 if QUICK else 2.0
BASELINE_SECONDS = 1.5 if QUICK else 3.0
SPEED_SECONDS = 1 if QUICK else 3
MIN_MSGS, MAX_MSGS = 40, 6000

CEILING_TARGET = 0.50   # msgs/s >= this x RSA-2048 signs/s (a)
PIPE_TARGET = 10.0      # msgs/s >= this x openssl cms per message (b)
POSTFIX_TARGET = 10.0   # msgs/s >= this x Postfix + pipe(8) openssl cms (c)
POSTFIX_CONC = 8        # smtp-source -s against (c)
POSTFIX_MSGS = 150 if QUICK else 400

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
FROM, TO = "from@example.com", "to@example.net"
CHECK_TO = "check@check.example"   # routed to a dumping sink, then checked


class Failed(Exception):
    pass


def run(argv, **kw):
    """Runs ARGV to completion; Failed with its stderr when it fails."""
    kw.setdefault("capture_output", True)
    r = subprocess.run([str(a) for a in argv], timeout=300, **kw)
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace") if r.stderr else ""
        raise Failed(f"exit status {r.returncode}: "
                     + " ".join(map(str, argv)) + "\n  " + err[-2000:])
    return r


def wait_port(port, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failed(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failed(f"{what} does not listen on 127.0.0.1:{port}")


def stop(proc):
    """Stops a process this bench started, by its PID."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid):
    """User+system CPU of PID so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# The daemon and its log
# ---------------------------------------------------------------------------

# smimegate[PID]: COMPONENT: key=value ... (docs/daemon.md)
LINE = re.compile(rb"^smimegate\[\d+\]: (\w+): (.*)$")
FIELD = re.compile(rb"(\w+)=(\"[^\"]*\"|\S*)")
PROBLEMS = {b"deferred", b"bounced", b"failed", b"error", b"commit-failed",
            b"spool-error", b"timeout", b"busy", b"refused"}


class DaemonLog:
    """Reads the daemon's log as it is written and stamps each line with
    the time it arrived (the log has no timestamps of its own): session
    connects, commits (queued), pipeline results and deliveries."""

    def __init__(self, stream, keep):
        self.stream = stream
        self.keep = keep            # the whole log, for a failure report
        self.cv = threading.Condition()
        self.reset()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def reset(self):
        with self.cv:
            self.connects = {}      # session -> time
            self.queued = {}        # qid -> (session, time)
            self.delivered = {}     # qid -> time
            self.processed = {}     # qid -> pipeline event
            self.problems = []

    def _read(self):
        for raw in self.stream:
            t = time.monotonic()
            self.keep.write(raw)
            m = LINE.match(raw.rstrip(b"\r\n"))
            if not m:
                continue
            comp = m.group(1)
            f = dict(FIELD.findall(m.group(2)))
            ev, qid = f.get(b"event"), f.get(b"qid")
            with self.cv:
                if comp == b"smtp" and ev == b"connect":
                    self.connects[f.get(b"session")] = t
                elif comp == b"smtp" and ev == b"queued":
                    self.queued[qid] = (f.get(b"session"), t)
                elif comp == b"pipeline" and qid is not None and ev:
                    self.processed[qid] = ev
                elif comp == b"queue" and ev == b"delivered":
                    self.delivered[qid] = t
                    self.cv.notify_all()
                if ev in PROBLEMS:
                    self.problems.append(raw.decode(errors="replace").strip())
                    self.cv.notify_all()
        with self.cv:
            self.problems.append("the daemon's log ended (did it exit?)")
            self.cv.notify_all()

    def wait_delivered(self, n, timeout):
        deadline = time.monotonic() + timeout
        with self.cv:
            while len(self.delivered) < n and not self.problems:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failed(f"{len(self.delivered)} of {n} messages "
                                 f"delivered after {timeout:.0f} s")
                self.cv.wait(left)
            if self.problems:
                raise Failed("the daemon reported a problem:\n  "
                             + "\n  ".join(self.problems[:5]))


class Sink:
    """smtp-sink on 127.0.0.1, counting messages (-c); with DUMP, each
    message is also written to a file under that directory."""

    def __init__(self, tmp, name, dump=None):
        self.port = free_port()
        self.count = 0
        argv = [SMTP_SINK, "-c"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # smtp-sink refuses to run as root
        if dump:
            argv += ["-d", os.path.join(dump, "%M.")]
        argv += [f"127.0.0.1:{self.port}", "1024"]
        self.err = open(os.path.join(tmp, f"{name}.stderr"), "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     stderr=self.err, cwd=dump or "/")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait_port(self.port, self.proc, "smtp-sink")

    def _read(self):
        # "sess=N quit=N mesg=N", each update ended by a CR
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            buf += chunk
            for m in re.finditer(rb"mesg=(\d+)", buf):
                self.count = int(m.group(1))
            buf = buf[-64:]

    def close(self):
        stop(self.proc)
        self.err.close()


class Gateway:
    def __init__(self, sg, tmp, sink, check_sink):
        self.sg, self.tmp = sg, tmp
        self.store = os.path.join(tmp, "store.db")
        self.ports = {mode: free_port() for _, mode in MODES}
        self.conf = os.path.join(tmp, "smimegate.conf")
        listeners = "".join(
            f"\n[listener {mode}]\nlisten = 127.0.0.1:{port}\n"
            f"role = outgoing\nrelay_from = 127.0.0.0/8\nprofile = {mode}\n"
            for mode, port in self.ports.items())
        profiles = "".join(
            f"\n[profile {mode}]\nsigner = org\nmode = {mode}\n"
            f"missing_key = bounce\n" for mode in self.ports)
        with open(self.conf, "w") as f:
            f.write(f"hostname = gw.bench\n"
                    f"store = {self.store}\n"
                    f"spool = {os.path.join(tmp, 'spool')}\n"
                    f"outbox = {os.path.join(tmp, 'outbox')}\n"
                    f"smarthost = 127.0.0.1:{sink.port}\n"
                    f"smarthost_tls = none\n"
                    f"{listeners}{profiles}"
                    f"\n[route check]\ndomains = check.example\n"
                    f"nexthop = 127.0.0.1:{check_sink.port}\ntls = none\n")
        self.proc = None
        self.log = None

    def cli(self, *args, store=None):
        return run([self.sg, *args[:2], "--store", store or self.store,
                    *args[2:]])

    def setup_keys(self):
        """Our signing certificate (RSA-2048, throw-away) and partners'
        certificates for the recipients (made in another store, added
        with `key add`): one for TO, one for CHECK_TO, whose private key
        is kept to check what was encrypted to it."""
        self.cli("cert", "create", "--name", "org", "--cn", "Example Org",
                 "--san-email", FROM, "--key", "rsa:2048")
        pki = os.path.join(self.tmp, "pki")
        os.mkdir(pki, 0o700)
        with open(os.path.join(pki, "org.pem"), "wb") as f:
            f.write(self.cli("cert", "export", "org", "--pem").stdout)
        partners = os.path.join(self.tmp, "partners.db")
        for name, addr in (("partner", TO), ("checker", CHECK_TO)):
            pem = os.path.join(pki, f"{name}.pem")
            self.cli("cert", "create", "--name", name, "--cn", name,
                     "--san-email", addr, "--key", "rsa:2048",
                     store=partners)
            with open(pem, "wb") as f:
                f.write(self.cli("cert", "export", name, "--pem",
                                 store=partners).stdout)
            self.cli("key", "add", name, pem)
        p12, pw = os.path.join(pki, "checker.p12"), os.path.join(pki, "pass")
        with open(pw, "w") as f:
            f.write("bench\n")
        self.cli("cert", "export", "checker", "--p12", p12, "--pass-file", pw,
                 store=partners)
        run(["openssl", "pkcs12", "-in", p12, "-passin", "pass:bench",
             "-nodes", "-nocerts", "-out", os.path.join(pki, "checker.key")])
        return pki

    def start(self):
        self.logfile = open(os.path.join(self.tmp, "daemon.log"), "wb")
        self.proc = subprocess.Popen(
            [self.sg, "serve", "-c", self.conf], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.log = DaemonLog(self.proc.stdout, self.logfile)
        for port in self.ports.values():
            wait_port(port, self.proc, "smimegate serve")

    def close(self):
        stop(self.proc)
        if self.log:
            self.log.thread.join(timeout=5)
            self.logfile.close()


# ---------------------------------------------------------------------------
# One timed run: smtp-source -> smimegate -> smtp-sink
# ---------------------------------------------------------------------------

def source(port, conc, count, to=TO):
    argv = [SMTP_SOURCE, "-s", str(conc), "-m", str(count), "-l", str(BODY),
            "-f", FROM, "-t", to, f"127.0.0.1:{port}"]
    run(argv)
    return " ".join(argv[:-1])


def timed_run(gw, sink, mode, conc, count):
    gw.log.reset()
    before = sink.count
    cpu0 = cpu_seconds(gw.proc.pid)
    sink0 = cpu_seconds(sink.proc.pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    source(gw.ports[mode], conc, count)
    t1 = time.monotonic()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    gw.log.wait_delivered(count, timeout=60 + 20 * RUN_SECONDS)
    cpu = cpu_seconds(gw.proc.pid) - cpu0
    # The load generator and the next hop share the machine: their CPU
    # (smtp-source, waited for, and smtp-sink) per message.
    tools = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime +
             cpu_seconds(sink.proc.pid) - sink0)
    lg = gw.log
    with lg.cv:
        last = max(lg.delivered.values())
        want = "signed" if mode == "sign" else "signed+encrypted"
        wrong = [q for q in lg.delivered
                 if lg.processed.get(q, b"").decode() != want]
        lat = [lg.delivered[q] - lg.connects[lg.queued[q][0]]
               for q in lg.delivered
               if q in lg.queued and lg.queued[q][0] in lg.connects]
    if len(lg.delivered) != count or wrong:
        raise Failed(f"{mode} -s {conc}: {len(lg.delivered)} delivered of "
                     f"{count}, {len(wrong)} not {want}")
    deadline = time.monotonic() + 5
    while sink.count - before < count and time.monotonic() < deadline:
        time.sleep(0.05)
    if sink.count - before != count:
        raise Failed(f"{mode} -s {conc}: smtp-sink counted "
                     f"{sink.count - before} of {count} messages")
    if len(lat) != count:
        raise Failed(f"{mode} -s {conc}: latency of {len(lat)} of {count}")
    return {"count": count, "rate": count / (last - t0),
            "accept": count / (t1 - t0), "lat": lat, "cpu": cpu,
            "tools": tools}


def check_output(gw, pki, check_dir):
    """One message per mode through the route to the dumping sink; it must
    verify (sign) or decrypt and verify (sign+encrypt) with openssl, so a
    fast wrong answer cannot pass for a fast answer."""
    for label, mode in MODES:
        gw.log.reset()
        for f in os.listdir(check_dir):
            os.unlink(os.path.join(check_dir, f))
        source(gw.ports[mode], 1, 1, to=CHECK_TO)
        gw.log.wait_delivered(1, timeout=60)
        deadline = time.monotonic() + 5
        while not os.listdir(check_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        files = os.listdir(check_dir)
        if len(files) != 1:
            raise Failed(f"{label}: the checking sink got {len(files)} "
                         f"messages, not 1")
        with open(os.path.join(check_dir, files[0]), "rb") as f:
            msg = f.read()
        verify = ["openssl", "cms", "-verify", "-CAfile",
                  os.path.join(pki, "org.pem")]
        if mode == "sign":
            out = run(verify, input=msg).stdout
        else:
            inner = run(["openssl", "cms", "-decrypt", "-recip",
                         os.path.join(pki, "checker.pem"), "-inkey",
                         os.path.join(pki, "checker.key")],
                        input=msg).stdout
            out = run(verify, input=inner).stdout
        if len(out) < BODY:
            raise Failed(f"{label}: the checked message has "
                         f"{len(out)} bytes")


def measure_gateway(gw, sink, between=None):
    """The timed runs, round by round; BETWEEN(round) runs after each
    round (the baselines that need the same sink, interleaved)."""
    # Warm-up (untimed) at -s 1 and -s 8 per mode, also to size the runs:
    # each timed run is aimed at RUN_SECONDS.
    est = {}
    for label, mode in MODES:
        for conc, n in ((1, 20), (8, 80)):
            r = timed_run(gw, sink, mode, conc, n)
            est[(mode, conc)] = r["rate"]
    counts = {}
    for _, mode in MODES:
        for conc in CONCURRENCY:
            rate = est[(mode, 1 if conc == 1 else 8)]
            counts[(mode, conc)] = int(min(MAX_MSGS, max(
                MIN_MSGS, rate * RUN_SECONDS)))
    res = {}
    for rnd in range(ROUNDS):
        for conc in CONCURRENCY:
            for label, mode in MODES:
                n = counts[(mode, conc)]
                log(f"bench: round {rnd + 1}/{ROUNDS}: {label} -s {conc}: "
                    f"{n} messages")
                res.setdefault((mode, conc), []).append(
                    timed_run(gw, sink, mode, conc, n))
        if between is not None:
            between(rnd)
    return res


# ---------------------------------------------------------------------------
# Baselines and the spool alone
# ---------------------------------------------------------------------------

def rsa_ceiling(ncpu):
    argv = ["openssl", "speed", "-multi", str(ncpu), "-seconds",
            str(SPEED_SECONDS), "rsa2048"]
    out = run(argv).stdout.decode()
    for line in out.splitlines():
        m = re.match(r"\s*rsa\s+2048\s+bits\s+\S+\s+\S+\s+([\d.]+)\s+", line)
        if m:
            return float(m.group(1)), " ".join(argv)
    raise Failed("cannot read the sign/s of `openssl speed`:\n" + out)


def pipe_message(path):
    """The message the pipe-style baseline signs: headers as smtp-source
    writes them and a BODY-byte body."""
    head = (f"From: <{FROM}>\r\nTo: <{TO}>\r\n"
            "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
            "Message-Id: <bench.1@example.com>\r\n\r\n").encode()
    line = b"La de da de da 1.\r\n"
    body = (line * (BODY // len(line) + 1))[:BODY - 2] + b"\r\n"
    with open(path, "wb") as f:
        f.write(head + body)


def pipe_keys(tmp):
    """The baselines' signing key and certificate (and message), made once."""
    key, cert = os.path.join(tmp, "pipe.key"), os.path.join(tmp, "pipe.pem")
    if not os.path.exists(cert):
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj",
             "/CN=Example Org", "-addext", f"subjectAltName=email:{FROM}"])
        pipe_message(os.path.join(tmp, "pipe.eml"))
    return key, cert


def pipe_baseline(tmp, parallel):
    """openssl cms -sign spawned for each message, the message on its
    standard input (as Postfix's pipe(8) would hand it to a filter),
    PARALLEL loops at once for BASELINE_SECONDS; messages per second."""
    key, cert = pipe_keys(tmp)
    argv = ["openssl", "cms", "-sign", "-signer", cert, "-inkey", key,
            "-md", "sha256"]
    msg = os.path.join(tmp, "pipe.eml")
    done, errors = [0] * parallel, []
    t0 = time.monotonic()
    until = t0 + BASELINE_SECONDS

    def loop(i):
        while time.monotonic() < until:
            with open(msg, "rb") as fin:
                r = subprocess.run(argv, stdin=fin, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
            if r.returncode != 0:
                errors.append(r.stderr.decode(errors="replace"))
                return
            done[i] += 1

    th = [threading.Thread(target=loop, args=(i,)) for i in range(parallel)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    if errors:
        raise Failed("openssl cms -sign failed: " + errors[0])
    shown = " ".join(os.path.basename(x) if x.startswith(tmp) else x
                     for x in argv)
    return sum(done) / (time.monotonic() - t0), shown


def postfix_baseline(tmp, sink, encrypt_to=None):
    """(c): a real Postfix with `openssl cms -sign` as its pipe(8) content
    filter (bench/postfix_pipe.py), POSTFIX_MSGS messages from smtp-source
    at -s POSTFIX_CONC, until smtp-sink has them all; messages per
    second, or None with the reason when it cannot run here."""
    import postfix_pipe

    why = postfix_pipe.available()
    if why:
        return None, why
    try:
        pf = postfix_pipe.PostfixPipe(tmp, sink.port,
                                      os.path.join(tmp, "pipe.pem"),
                                      os.path.join(tmp, "pipe.key"),
                                      encrypt_to)
    except RuntimeError as e:
        raise Failed(f"Postfix + openssl cms: {e}")
    try:
        before = sink.count
        t0 = time.monotonic()
        source(pf.port, POSTFIX_CONC, POSTFIX_MSGS)
        deadline = time.monotonic() + 60 + POSTFIX_MSGS / 5
        last, seen = t0, before
        while sink.count - before < POSTFIX_MSGS:
            if time.monotonic() > deadline:
                raise Failed(f"Postfix + openssl cms: {sink.count - before}"
                             f" of {POSTFIX_MSGS} at smtp-sink\n" + pf.log())
            if sink.count != seen:
                seen, last = sink.count, time.monotonic()
            time.sleep(0.02)
        if sink.count != seen:
            last = time.monotonic()
        return POSTFIX_MSGS / (last - t0), None
    finally:
        pf.close()


def commit_bench(root, tmp):
    """bench/spool_commit.c against this tree's release objects: commits
    per second of the spool alone, 1, 8 and 32 committing threads."""
    exe = os.path.join(tmp, "spool_commit")
    objs = []
    for layer in ("lib", "store", "policy", "daemon"):
        d = os.path.join(root, "build", "rel", "src", layer)
        objs += sorted(os.path.join(d, f) for f in os.listdir(d)
                       if f.endswith(".o"))
    pkgs = ["gmime-3.0", "openssl", "sqlite3", "libevent",
            "libevent_pthreads", "libevent_openssl"]
    cflags = run(["pkg-config", "--cflags", *pkgs]).stdout.decode().split()
    libs = run(["pkg-config", "--libs", *pkgs]).stdout.decode().split()
    # an archive, so that only what the spool needs is linked
    lib = os.path.join(tmp, "libcore.a")
    run(["ar", "rcs", lib, *objs])
    run([os.environ.get("CC", "cc"), "-std=c17", "-D_GNU_SOURCE", "-O2",
         "-I" + os.path.join(root, "include"), "-I" + os.path.join(root, "src"),
         *cflags, "-o", exe, os.path.join(root, "bench", "spool_commit.c"),
         lib, *libs, "-lpthread"])
    res = {}
    for t in COMMITTERS:
        d = os.path.join(tmp, f"commit-spool-{t}")
        out = run([exe, d, str(t), str(COMMIT_SECONDS)]).stdout.decode()
        m = re.search(r"commits_per_s=(\d+)", out)
        if not m:
            raise Failed("spool_commit: " + out)
        res[t] = int(m.group(1))
        shutil.rmtree(d, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def fs_of(path):
    """The file system type and device PATH is on (/proc/self/mounts)."""
    best, kind = "", "?"
    path = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as fh:
            for line in fh:
                dev, mnt, typ = line.split()[:3]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) \
                        and len(mnt) >= len(best):
                    best, kind = mnt, f"{typ} on {dev}"
    except OSError:
        pass
    return kind


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def report(a):
    print(f"smimegate: {a['bin']} (git {a['rev']})")
    print(f"openssl:   {a['ossl']}")
    print(f"machine:   {cpu_model()}, {os.cpu_count()} CPUs, load average "
          f"{a['load0']} at start, {loadavg()} at end")
    print(f"spool:     {a['fs']} (a 250 waits for its fsyncs)")
    print(f"message:   {BODY}-byte body (smtp-source -l {BODY}), 1 recipient;"
          f" RSA-2048 signer, SHA-256; sign+encrypt: AES-256-CBC to one "
          f"RSA-2048 partner")
    print(f"runs:      each cell: {ROUNDS} interleaved run"
          f"{'s' if ROUNDS > 1 else ''} of about {RUN_SECONDS:.0f} s"
          + (" (BENCH_QUICK)" if QUICK else "")
          + "; msgs/s: the mean, latency: all messages of the cell")
    print()
    print(f"spool commits alone (bench/spool_commit.c, 10 KiB, "
          f"{COMMIT_SECONDS:.0f} s each)")
    print("  " + "  ".join(f"{t:>2} committer{'s' if t > 1 else ' '}: "
                           f"{r:>5}/s" for t, r in a["commits"].items()))
    print()
    ceil, pipe = a["ceiling"], a["pipe1"]
    h1 = (f"{'':13} {'':>4} | {'messages':>8} {'msgs/s':>7} "
          f"{'accept/s':>8} {'cpu ms':>6} {'tools':>6} | {'latency ms':^15} | "
          f"{'vs (a)':>6} {'vs (b)':>6}")
    h2 = (f"{'mode':13} {'-s':>4} | {'':>8} {'':>7} {'':>8} {'/msg':>6} "
          f"{'ms/msg':>6} | "
          f"{'p50':>7} {'p99':>7} | {'':>6} {'':>6}")
    print("gateway, end to end: smtp-source -> smimegate -> smtp-sink")
    print(h1)
    print(h2)
    print("-" * len(h1))
    best = {}
    for label, mode in MODES:
        for conc in CONCURRENCY:
            runs = a["gw"][(mode, conc)]
            rate = statistics.mean(r["rate"] for r in runs)
            acc = statistics.mean(r["accept"] for r in runs)
            n = sum(r["count"] for r in runs)
            cpu = sum(r["cpu"] for r in runs) / n * 1000
            tools = sum(r["tools"] for r in runs) / n * 1000
            lat = [x for r in runs for x in r["lat"]]
            print(f"{label:13} {conc:>4} | {n:>8} {rate:>7.0f} {acc:>8.0f} "
                  f"{cpu:>6.2f} {tools:>6.2f} | {pct(lat, 50) * 1000:>7.1f} "
                  f"{pct(lat, 99) * 1000:>7.1f} | {rate / ceil:>6.1%} "
                  f"{rate / pipe:>5.1f}x")
            if rate > best.get(label, (0, 0))[0]:
                best[label] = (rate, conc)
        print("-" * len(h1))
    print()
    print("baselines")
    print(f"  (a) RSA-2048 signing ceiling: {ceil:8.0f} signs/s   "
          f"`{a['ceiling_cmd']}`")
    print(f"  (b) openssl cms per message:  {pipe:8.0f} msgs/s    "
          f"`{a['pipe_cmd']} < MSG`, one at a time")
    print(f"      the same, {os.cpu_count()} at a time:   "
          f"{a['pipeN']:8.0f} msgs/s    (information)")
    pf = a["postfix"]
    pfs = {"sign": pf, "sign+encrypt": a["postfix_enc"]}
    if pf:
        print(f"  (c) Postfix + pipe(8) openssl cms: {pf:5.0f} msgs/s    "
              f"mean of {ROUNDS}, after each round: "
              f"smtp-source -s {POSTFIX_CONC} -m {POSTFIX_MSGS} -> Postfix "
              f"-> filter.sh (openssl cms -sign | msmtp) -> Postfix -> "
              f"smtp-sink")
        print(f"      sign+encrypt:             {a['postfix_enc']:8.0f} "
              f"msgs/s    the same with `| openssl cms -encrypt -aes256 "
              f"partner.pem` before msmtp")
    else:
        print(f"  (c) Postfix + pipe(8) openssl cms: not measured: "
              f"{a['postfix_why']}")
    print()
    print("targets (the best concurrency of each mode)")
    met = total = 0
    for label, (rate, conc) in best.items():
        for ok, text in (
                (rate >= CEILING_TARGET * ceil,
                 f"{label}: {rate:.0f} msgs/s (-s {conc}) = "
                 f"{rate / ceil:.1%} of the RSA-2048 ceiling (a) "
                 f"({'>=' if rate >= CEILING_TARGET * ceil else '<'} "
                 f"{CEILING_TARGET:.0%})"),
                (rate >= PIPE_TARGET * pipe,
                 f"{label}: {rate:.0f} msgs/s (-s {conc}) = "
                 f"{rate / pipe:.1f}x openssl cms per message (b) "
                 f"({'>=' if rate >= PIPE_TARGET * pipe else '<'} "
                 f"{PIPE_TARGET:.0f}x)")):
            print(f"  {'PASS' if ok else 'MISS'}  {text}")
            met += ok
            total += 1
        if pf:
            base = pfs[label]
            ok = rate >= POSTFIX_TARGET * base
            print(f"  {'PASS' if ok else 'MISS'}  {label}: {rate:.0f} msgs/s "
                  f"(-s {conc}) = {rate / base:.1f}x Postfix + openssl cms (c) "
                  f"({'>=' if ok else '<'} {POSTFIX_TARGET:.0f}x)")
            met += ok
            total += 1
    print(f"{met} of {total} targets met; bench took "
          f"{time.monotonic() - a['t0']:.0f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--root", required=True)
    args = ap.parse_args()
    sg = os.path.abspath(args.bin)
    root = os.path.abspath(args.root)
    a = {"t0": time.monotonic(), "load0": loadavg(), "rev": git_rev(root)}
    a["bin"] = os.path.relpath(sg, root) if sg.startswith(root + "/") else sg
    # On the project's disk, not a tmpfs /tmp: fsync must cost what it costs.
    base = os.environ.get("BENCH_DIR") or os.path.join(root, "build")
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="bench-gateway.", dir=base)
    a["fs"] = fs_of(tmp)
    gw = sink = check_sink = check_dir = None
    try:
        for tool in (SMTP_SOURCE, SMTP_SINK):
            if not os.access(tool, os.X_OK):
                raise Failed(f"{tool} is missing (apt-get install postfix)")
        a["ossl"] = run(["openssl", "version"]).stdout.decode().strip()
        log("bench: spool commits alone")
        a["commits"] = commit_bench(root, tmp)
        log("bench: keys, smtp-sink, the daemon")
        # smtp-sink writes as nobody when we are root: its own directory
        check_dir = tempfile.mkdtemp(prefix="bench-gateway-check.",
                                     dir=base)
        if os.geteuid() == 0:
            shutil.chown(check_dir, "nobody")
        sink = Sink(tmp, "sink")
        check_sink = Sink(tmp, "check-sink", dump=check_dir)
        gw = Gateway(sg, tmp, sink, check_sink)
        pki = gw.setup_keys()
        gw.start()
        log("bench: checking one message of each mode with openssl")
        check_output(gw, pki, check_dir)
        pipe_keys(tmp)
        pf = {"sign": [], "sign+encrypt": []}

        def between(rnd):
            # (c) after each round, so that it meets the same load
            for label, rcpt in (("sign", None),
                                ("sign+encrypt",
                                 os.path.join(pki, "partner.pem"))):
                log(f"bench: round {rnd + 1}/{ROUNDS}: (c) Postfix + "
                    f"openssl cms, {label}: {POSTFIX_MSGS} messages")
                rate, a["postfix_why"] = postfix_baseline(tmp, sink, rcpt)
                if rate is None:
                    return
                pf[label].append(rate)

        a["gw"] = measure_gateway(gw, sink, between)
        gw.close()
        sink.close()
        a["postfix"] = statistics.mean(pf["sign"]) if pf["sign"] else None
        a["postfix_enc"] = (statistics.mean(pf["sign+encrypt"])
                            if pf["sign+encrypt"] else None)
        log("bench: baselines")
        a["pipe1"], a["pipe_cmd"] = pipe_baseline(tmp, 1)
        a["ceiling"], a["ceiling_cmd"] = rsa_ceiling(os.cpu_count())
        a["pipeN"], _ = pipe_baseline(tmp, os.cpu_count())
        report(a)
    except (Failed, subprocess.TimeoutExpired, OSError) as e:
        print(f"bench: FAILED, no figures: {e}", file=sys.stderr)
        if gw is not None and gw.proc is not None:
            print(f"bench: the daemon's log: {tmp}/daemon.log",
                  file=sys.stderr)
            os.environ["BENCH_KEEP"] = "1"
        return 1
    finally:
        for p in (gw, sink, check_sink):
            if p is not None:
                p.close()
        if os.environ.get("BENCH_KEEP"):
            log(f"bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        if check_dir:
            shutil.rmtree(check_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
