#!/usr/bin/python3
"""smimegate next to `openssl cms`: wall time and peak RSS per message.

Run through bench/bench.sh (`make bench`); bench/README.md explains what
is measured and how to read the output.  Standard library only.
"""

import argparse
import base64
import email.utils
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchutil import log, git_rev, cpu_model, loadavg

KIB = 1024
MIB = 1024 * 1024

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")

# (label, size in bytes, timed runs per tool, RSS runs per tool)
SIZES = [
    ("10 KiB", 10 * KIB, 7 if QUICK else 30, 1 if QUICK else 3),
    ("25 MiB", 25 * MIB, 3 if QUICK else 7, 1 if QUICK else 2),
]
OPS = ["sign", "encrypt", "sign+encrypt", "verify", "decrypt"]

# Batch: this many copies of the 10 KiB message, timed runs per tool
BATCH = (50, 3) if QUICK else (200, 5)
BATCH_OPS = ["sign", "encrypt", "verify", "decrypt", "sign -j2"]

RSS_LIMIT_MIB = 32          # 25 MiB sign and encrypt: peak RSS below this
VERIFY_FACTOR = 0.5         # 25 MiB verify: time <= this x openssl's


class CommandFailed(Exception):
    pass


# ---------------------------------------------------------------------------
# The test message
# ---------------------------------------------------------------------------

PROSE = (
    "Hello Bob,\r\n"
    "\r\n"
    "please find attached the export we talked about on Tuesday. It has\r\n"
    "every record up to the end of last quarter; the format is unchanged\r\n"
    "from the previous delivery, so your import job should take it as is.\r\n"
    "Let me know if anything looks off, or if you need the older months\r\n"
    "split into separate files.\r\n"
    "\r\n"
    "Best regards,\r\n"
    "Alice\r\n"
    "\r\n"
    "-- \r\n"
    "Alice Example, Data Operations\r\n"
    "Example Corp, 1 Example Street, Exampletown\r\n"
)


def b64_len(n):
    """Length of base64 of N bytes in 76-character CRLF lines."""
    chars = 4 * ((n + 2) // 3)
    lines = (chars + 75) // 76
    return chars + 2 * lines


def make_message(size):
    """A realistic RFC 5322 multipart/mixed message of exactly SIZE bytes,
    CRLF line ends: a text/plain part and a base64 attachment of random
    bytes.  Returns (message, marker): the marker is the attachment's last
    base64 line, which every verify/decrypt output must contain."""
    boundary = "=_bench_" + os.urandom(12).hex()
    head = (
        "Return-Path: <alice@example.com>\r\n"
        "Received: from client.example.com (client.example.com [192.0.2.10])\r\n"
        "\tby mx.example.com (Postfix) with ESMTPS id 4QxYz1abcd\r\n"
        "\tfor <bob@example.org>; " + email.utils.formatdate() + "\r\n"
        "From: Alice Example <alice@example.com>\r\n"
        "To: Bob Example <bob@example.org>\r\n"
        "Subject: Quarterly export (" + f"{size} bytes" + ")\r\n"
        "Date: " + email.utils.formatdate(localtime=True) + "\r\n"
        "Message-ID: " + email.utils.make_msgid(domain="example.com") + "\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="' + boundary + '"\r\n'
        "\r\n"
        "This is a multi-part message in MIME format.\r\n"
        "\r\n"
        "--" + boundary + "\r\n"
        "Content-Type: text/plain; charset=us-ascii; format=flowed\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
    ).encode()
    text = PROSE.encode()
    att_head = (
        "\r\n"
        "--" + boundary + "\r\n"
        'Content-Type: application/octet-stream; name="export-q3.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="export-q3.bin"\r\n'
        "\r\n"
    ).encode()
    tail = ("--" + boundary + "--\r\n").encode()
    budget = size - len(head) - len(text) - len(att_head) - len(tail) - 16
    if budget < 200:
        raise ValueError(f"message size {size} too small")
    nraw = budget * 57 // 78
    while b64_len(nraw + 1) <= budget:
        nraw += 1
    while b64_len(nraw) > budget:
        nraw -= 1
    body = base64.encodebytes(os.urandom(nraw)).replace(b"\n", b"\r\n")
    assert len(body) == b64_len(nraw)
    # Pad the text part to the exact size with one more line of text.
    pad = size - len(head) - len(text) - len(att_head) - len(tail) - len(body)
    text += b"Ref: " + b"x" * (pad - 7) + b"\r\n"
    msg = head + text + att_head + body + tail
    assert len(msg) == size, (len(msg), size)
    marker = body.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
    return msg, marker


# ---------------------------------------------------------------------------
# Running one command or one pipeline
# ---------------------------------------------------------------------------

class Runner:
    def __init__(self, tmp, env):
        self.tmp = tmp
        self.env = env
        self.err = [os.path.join(tmp, f"stderr.{i}") for i in range(2)]
        self.rssf = [os.path.join(tmp, f"rss.{i}") for i in range(2)]
        self.gnu_time = self._find_gnu_time()

    def _find_gnu_time(self):
        """GNU time, if installed and working: see README (why not wait4)."""
        path = "/usr/bin/time"
        if not os.access(path, os.X_OK):
            return None
        out = os.path.join(self.tmp, "time-probe")
        try:
            subprocess.run([path, "-f", "%M", "-o", out, "/bin/true"],
                           check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            with open(out) as f:
                int(f.read().split()[-1])
        except (OSError, ValueError, IndexError,
                subprocess.CalledProcessError):
            return None
        return path

    def run(self, stages, out=None, rss=False):
        """Run STAGES (one argv, or two piped together: first | second),
        the first reading its input from a file named in its argv, the
        last writing to OUT (default /dev/null).  Returns (wall seconds,
        user+sys CPU seconds, peak RSS in KiB over the stages or None).
        With RSS (and GNU time installed), each stage runs under GNU time
        and the peak RSS comes from it.  Without, no RSS: wait4's
        ru_maxrss of a child of this process is at least this process's
        own peak RSS, so it would be wrong (see README)."""
        wrap = rss and self.gnu_time is not None
        argvs = []
        for i, argv in enumerate(stages):
            if wrap:
                argv = [self.gnu_time, "-f", "%M", "-o", self.rssf[i]] + argv
            argvs.append(argv)
        errs = [open(self.err[i], "wb") for i in range(len(argvs))]
        sink = open(out, "wb") if out else subprocess.DEVNULL
        procs = []
        try:
            t0 = time.perf_counter()
            if len(argvs) == 1:
                procs.append(subprocess.Popen(
                    argvs[0], stdin=subprocess.DEVNULL, stdout=sink,
                    stderr=errs[0], env=self.env))
            else:
                p1 = subprocess.Popen(
                    argvs[0], stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=errs[0], env=self.env)
                procs.append(p1)
                procs.append(subprocess.Popen(
                    argvs[1], stdin=p1.stdout, stdout=sink,
                    stderr=errs[1], env=self.env))
                p1.stdout.close()
            results = []
            for p in procs:
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
                results.append(ru)
            wall = time.perf_counter() - t0
        finally:
            for f in errs:
                f.close()
            if out:
                sink.close()
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    p.wait()
        for i, p in enumerate(procs):
            if p.returncode != 0:
                with open(self.err[i], "rb") as f:
                    err = f.read().decode(errors="replace").strip()
                raise CommandFailed(
                    f"exit status {p.returncode}: "
                    + " | ".join(" ".join(a) for a in stages)
                    + (f"\n  stage {i + 1} stderr: {err[-2000:]}"
                       if err else ""))
        cpu = sum(ru.ru_utime + ru.ru_stime for ru in results)
        peak = None
        if wrap:
            peak = 0
            for i in range(len(stages)):
                with open(self.rssf[i]) as f:
                    peak = max(peak, int(f.read().split()[-1]))
        return wall, cpu, peak


# ---------------------------------------------------------------------------
# The two tools
# ---------------------------------------------------------------------------

class Tools:
    def __init__(self, sg, pki):
        self.sg = sg
        self.p = lambda name: os.path.join(pki, name)

    def _in(self, tool, path):
        if path is None:
            return []
        return ["--in", path] if tool == "sg" else ["-in", path]

    def sign(self, tool, path):
        p = self.p
        if tool == "sg":
            return [self.sg, "sign", "--signer", p("alice.pem"),
                    "--key", p("alice.key"), "--certfile", p("alice-chain.pem"),
                    "--digest", "sha256"] + self._in(tool, path)
        return ["openssl", "cms", "-sign", "-signer", p("alice.pem"),
                "-inkey", p("alice.key"), "-certfile", p("alice-chain.pem"),
                "-md", "sha256"] + self._in(tool, path)

    def encrypt(self, tool, path):
        if tool == "sg":
            return [self.sg, "encrypt", "--recipient", self.p("bob.pem"),
                    "--cipher", "aes-256-cbc"] + self._in(tool, path)
        return (["openssl", "cms", "-encrypt", "-aes256"]
                + self._in(tool, path) + [self.p("bob.pem")])

    def verify(self, tool, path):
        if tool == "sg":
            return [self.sg, "verify", "--trust", self.p("trust.pem")] \
                + self._in(tool, path)
        return ["openssl", "cms", "-verify", "-CAfile",
                self.p("trust.pem")] + self._in(tool, path)

    def decrypt(self, tool, path):
        if tool == "sg":
            return [self.sg, "decrypt", "--cert", self.p("bob.pem"),
                    "--key", self.p("bob.key")] + self._in(tool, path)
        return ["openssl", "cms", "-decrypt", "-recip", self.p("bob.pem"),
                "-inkey", self.p("bob.key")] + self._in(tool, path)

    def stages(self, tool, op, files):
        """The argv list(s) for OP by TOOL on the files of one size."""
        if op == "sign":
            return [self.sign(tool, files["msg"])]
        if op == "encrypt":
            return [self.encrypt(tool, files["msg"])]
        if op == "sign+encrypt":
            return [self.sign(tool, files["msg"]), self.encrypt(tool, None)]
        if op == "verify":
            return [self.verify(tool, files["signed"])]
        if op == "decrypt":
            return [self.decrypt(tool, files["enc"])]
        raise ValueError(op)


# ---------------------------------------------------------------------------
# Setup: inputs for verify/decrypt, and a check that both tools do the work
# ---------------------------------------------------------------------------

def prepare(runner, tools, tmp, label, size):
    tag = label.replace(" ", "")
    f = {k: os.path.join(tmp, f"{tag}.{k}.eml")
         for k in ("msg", "signed", "enc")}
    msg, marker = make_message(size)
    with open(f["msg"], "wb") as fh:
        fh.write(msg)
    del msg
    # verify and decrypt inputs: smimegate's own output, for both tools
    runner.run([tools.sign("sg", f["msg"])], out=f["signed"])
    runner.run([tools.encrypt("sg", f["msg"])], out=f["enc"])
    # every operation once per tool, output to a file, checked
    for op in OPS:
        for tool in ("sg", "os"):
            out = os.path.join(tmp, f"{tag}.check.{tool}.{op}.eml")
            runner.run(tools.stages(tool, op, f), out=out)
            check_output(runner, tools, op, tool, out, size, marker)
            os.unlink(out)
    return f


def name(tool):
    return "smimegate" if tool == "sg" else "openssl cms"


def check_output(runner, tools, op, tool, out, size, marker):
    """Exit status 0 is checked by run(); also check that the output holds
    the message: verify/decrypt give the attachment back, sign/encrypt
    outputs round-trip through openssl (the reference)."""
    if op in ("sign", "encrypt", "sign+encrypt"):
        back = out + ".back"
        if op == "sign":
            stages = [tools.verify("os", out)]
        elif op == "encrypt":
            stages = [tools.decrypt("os", out)]
        else:
            stages = [tools.decrypt("os", out), tools.verify("os", None)]
        try:
            runner.run(stages, out=back)
        except CommandFailed as e:
            raise CommandFailed(f"{name(tool)} {op} output does not "
                                f"round-trip through openssl cms: {e}")
        check_output(runner, tools, "roundtrip of " + op, tool, back,
                     size, marker)
        os.unlink(back)
        return
    with open(out, "rb") as fh:
        data = fh.read()
    if len(data) < size * 0.9 or marker not in data:
        raise CommandFailed(f"{name(tool)} {op}: output does not hold the message "
                            f"({len(data)} bytes)")


# ---------------------------------------------------------------------------
# Measuring and reporting
# ---------------------------------------------------------------------------

def measure(runner, tools, f, op, n, n_rss):
    """N interleaved timed runs (smimegate, openssl, smimegate, ...) after
    one untimed warm-up pair, then N_RSS interleaved runs for peak RSS."""
    res = {t: {"wall": [], "cpu": [], "rss": []} for t in ("sg", "os")}
    for tool in ("sg", "os"):
        runner.run(tools.stages(tool, op, f))
    for _ in range(n):
        for tool in ("sg", "os"):
            wall, cpu, _ = runner.run(tools.stages(tool, op, f))
            res[tool]["wall"].append(wall)
            res[tool]["cpu"].append(cpu)
    if runner.gnu_time is not None:
        for _ in range(n_rss):
            for tool in ("sg", "os"):
                _, _, rss = runner.run(tools.stages(tool, op, f), rss=True)
                res[tool]["rss"].append(rss)
    out = {}
    for tool, r in res.items():
        out[tool] = {"wall": statistics.median(r["wall"]),
                     "cpu": statistics.median(r["cpu"]),
                     "rss": max(r["rss"]) / KIB if r["rss"] else None}
    return out


def batch_dirs(tmp, f, count):
    """COUNT copies of the 10 KiB message, signed and encrypted messages
    in three input directories: {"msg": dir, "signed": dir, "enc": dir}."""
    dirs = {}
    for kind in ("msg", "signed", "enc"):
        d = os.path.join(tmp, f"batch.{kind}")
        os.mkdir(d)
        with open(f[kind], "rb") as fh:
            data = fh.read()
        for i in range(count):
            with open(os.path.join(d, f"m{i:05d}.eml"), "wb") as fh:
                fh.write(data)
        dirs[kind] = d
    return dirs


def batch_stages(tools, tool, op, dirs, out):
    """smimegate: one process over the directory (--in-dir/--out-dir);
    openssl: what a script does without it, one `openssl cms` per file in
    a shell loop, each writing its own output file.  "sign -j2": two
    workers (--jobs 2) against two such loops (xargs -P 2)."""
    jobs = 2 if op.endswith(" -j2") else 1
    op = op.split()[0]
    src = dirs["signed" if op == "verify" else "enc" if op == "decrypt"
               else "msg"]
    if tool == "sg":
        return [getattr(tools, op)("sg", None)
                + ["--in-dir", src, "--out-dir", out]
                + (["--jobs", str(jobs)] if jobs > 1 else [])]
    # -out before the operands (encrypt's recipient certificate is last);
    # in the shell: $F the message, $O the output directory
    argv = getattr(tools, op)("os", "$F")
    argv = argv[:3] + ["-out", "$O/${F##*/}"] + argv[3:]
    cmd = " ".join('"' + a + '"' if a.startswith("$") else "'" + a + "'"
                   for a in argv)
    if jobs == 1:
        return [["sh", "-c", f'O=$2; for F in "$1"/*; do {cmd} || exit 1; '
                 f'done', "sh", src, out]]
    # xargs runs `sh -c CMD sh OUT FILE` for each file, JOBS at a time
    return [["sh", "-c", f'printf "%s\\0" "$1"/* | xargs -0 -P {jobs} -n 1 '
             f'sh -c "$3" sh "$2"', "sh", src, out,
             f'O=$1; F=$2; {cmd}']]


def measure_batch(runner, tools, dirs, tmp, op, count, n):
    """Median wall time per message over N interleaved runs of each tool
    on COUNT messages (one untimed warm-up each; every run's outputs are
    counted, and the first run's checked with openssl)."""
    res = {"sg": [], "os": []}
    for i in range(n + 1):
        for tool in ("sg", "os"):
            out = os.path.join(tmp, f"batch.out.{tool}")
            shutil.rmtree(out, ignore_errors=True)
            os.mkdir(out)
            wall, _, _ = runner.run(batch_stages(tools, tool, op, dirs, out))
            names = sorted(os.listdir(out))
            if len(names) != count:
                raise CommandFailed(f"batch {op} by {name(tool)}: "
                                    f"{len(names)} outputs of {count}")
            if i == 0 and op.split()[0] in ("sign", "encrypt"):
                check = tools.verify if op.startswith("sign") \
                    else tools.decrypt
                runner.run([check("os", os.path.join(out, names[-1]))])
            if i > 0:
                res[tool].append(wall / count)
    return {t: statistics.median(v) for t, v in res.items()}


def fmt_num(v, digits):
    return "n/a" if v is None else f"{v:.{digits}f}"


def fmt_time(s):
    ms = s * 1000
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 100:
        return f"{ms:.1f} ms"
    return f"{ms:.0f} ms"


def fmt_rate(size, s):
    r = size / MIB / s
    return f"{r:.1f}" if r >= 10 else f"{r:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--root", required=True)
    args = ap.parse_args()
    sg = os.path.abspath(args.bin)
    root = os.path.abspath(args.root)

    t_start = time.monotonic()
    load_start = loadavg()
    tmp = tempfile.mkdtemp(prefix="smimegate-bench.")
    try:
        # smimegate spools (pipe input, verify output) under TMPDIR
        env = dict(os.environ, TMPDIR=tmp, LC_ALL="C")
        runner = Runner(tmp, env)
        pki = os.path.join(tmp, "pki")
        log("bench: generating the test PKI")
        r = subprocess.run(["sh", os.path.join(root, "tests/pki/mkpki.sh"),
                            pki], capture_output=True, text=True)
        if r.returncode != 0:
            raise CommandFailed("mkpki.sh failed:\n" + r.stderr)
        tools = Tools(sg, pki)
        ossl = subprocess.run(["openssl", "version"], capture_output=True,
                              text=True).stdout.strip()

        files = {}
        for label, size, _, _ in SIZES:
            log(f"bench: {label}: generating the message, checking every "
                f"operation of both tools")
            files[label] = prepare(runner, tools, tmp, label, size)

        rows = []
        for label, size, n, n_rss in SIZES:
            for op in OPS:
                log(f"bench: {label} {op}: {n} runs per tool")
                rows.append((label, size, op, n,
                             measure(runner, tools, files[label], op, n,
                                     n_rss)))
        count, n = BATCH
        log(f"bench: batch of {count} x 10 KiB: {n} runs per tool")
        dirs = batch_dirs(tmp, files[SIZES[0][0]], count)
        batch = [(op, measure_batch(runner, tools, dirs, tmp, op, count, n))
                 for op in BATCH_OPS]
        elapsed = time.monotonic() - t_start
        report_batch(batch, count, n)
        report(rows, sg, root, ossl, runner, load_start, elapsed)
    except CommandFailed as e:
        print(f"bench: FAILED, comparison invalid: {e}", file=sys.stderr)
        return 1
    finally:
        if os.environ.get("BENCH_KEEP"):
            log(f"bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(rows, sg, root, ossl, runner, load_start, elapsed):
    rel = os.path.relpath(sg, root) if sg.startswith(root + "/") else sg
    print(f"smimegate: {rel} (git {git_rev(root)})")
    print(f"openssl:   {ossl}")
    print(f"machine:   {cpu_model()}, {os.cpu_count()} CPUs, load average "
          f"{load_start} at start, {loadavg()} at end")
    runs = ", ".join(f"{label}: median of {n} runs"
                     for label, _, n, _ in SIZES)
    rss_how = ("GNU time %M, max of " + ", ".join(
        f"{nr} run{'s' if nr > 1 else ''} ({label})"
        for label, _, _, nr in SIZES)
        if runner.gnu_time else
        "NOT MEASURED: GNU time (/usr/bin/time) is not installed "
        "(apt-get install time)")
    print(f"time:      wall clock per message, {runs}"
          + (" (BENCH_QUICK)" if QUICK else ""))
    print(f"peak RSS:  {rss_how}; sign+encrypt: the larger of its two "
          f"processes")
    print("verify and decrypt inputs: smimegate's signed / encrypted "
          "message, the same file for both tools")
    print()
    h1 = (f"{'':7} {'':13}| {'smimegate':^28}| {'openssl cms':^28}"
          f"| {'smimegate/openssl':^18}")
    h2 = (f"{'size':7} {'operation':13}|"
          + f" {'time':>10} {'MiB/s':>7} {'RSS MiB':>8} |" * 2
          + f" {'time':>5} {'RSS':>5} {'cpu':>5}")
    print(h1.rstrip())
    print(h2)
    print("-" * len(h2))
    prev = None
    for label, size, op, n, m in rows:
        if prev is not None and prev != label:
            print("-" * len(h2))
        prev = label
        s, o = m["sg"], m["os"]
        line = f"{label:7} {op:13}|"
        for t in (s, o):
            line += (f" {fmt_time(t['wall']):>10}"
                     f" {fmt_rate(size, t['wall']):>7}"
                     f" {fmt_num(t['rss'], 1):>8} |")
        rss_ratio = s["rss"] / o["rss"] if s["rss"] is not None else None
        line += (f" {s['wall'] / o['wall']:5.2f} {fmt_num(rss_ratio, 2):>5}"
                 f" {s['cpu'] / o['cpu']:5.2f}")
        print(line)
    print()
    print("targets")
    checks = []
    for label, size, op, n, m in rows:
        ratio = m["sg"]["wall"] / m["os"]["wall"]
        checks.append((ratio <= 1.0,
                       f"{label} {op}: time ratio {ratio:.2f} "
                       f"({'<=' if ratio <= 1.0 else '>'} 1.00)"))
    big = [r for r in rows if r[1] == SIZES[-1][1]]
    for label, size, op, n, m in big:
        if op in ("sign", "encrypt"):
            v = m["sg"]["rss"]
            if v is None:
                checks.append((None, f"{label} {op}: smimegate peak RSS not "
                                     f"measured (no GNU time)"))
                continue
            ok = v < RSS_LIMIT_MIB
            checks.append((ok, f"{label} {op}: smimegate peak RSS {v:.1f} "
                               f"MiB ({'<' if ok else '>='} "
                               f"{RSS_LIMIT_MIB} MiB)"))
    for label, size, op, n, m in big:
        if op == "verify":
            ratio = m["sg"]["wall"] / m["os"]["wall"]
            ok = ratio <= VERIFY_FACTOR
            checks.append((ok, f"{label} verify: time ratio {ratio:.2f} "
                               f"({'<=' if ok else '>'} {VERIFY_FACTOR:.2f}"
                               f" x openssl cms -verify)"))
    for ok, text in checks:
        mark = "SKIP" if ok is None else "PASS" if ok else "MISS"
        print(f"  {mark}  {text}")
    met = sum(ok is True for ok, _ in checks)
    skipped = sum(ok is None for ok, _ in checks)
    print(f"{met} of {len(checks)} targets met"
          + (f" ({skipped} not measured)" if skipped else "")
          + f"; bench took {elapsed:.0f} s")


def report_batch(batch, count, n):
    print(f"batch: {count} messages of 10 KiB, wall time per message, "
          f"median of {n} runs")
    print("  smimegate: one process, --in-dir DIR --out-dir DIR (each "
          "output fsync'd and renamed)")
    print("  openssl:   a shell loop, one `openssl cms ... -in F -out "
          "OUT/F` per message")
    print("  sign -j2:  smimegate --jobs 2, against two loops "
          "(xargs -P 2)")
    h = f"  {'operation':10}| {'smimegate':>10} | {'openssl cms':>11} | ratio"
    print(h)
    print("  " + "-" * (len(h) - 2))
    for op, m in batch:
        print(f"  {op:10}| {fmt_time(m['sg']):>10} | "
              f"{fmt_time(m['os']):>11} | {m['sg'] / m['os']:5.2f}")
    print()


if __name__ == "__main__":
    sys.exit(main())
