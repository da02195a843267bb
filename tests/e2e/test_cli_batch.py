"""Batch mode of the one-shot commands: `--in-dir DIR --out-dir DIR` runs
sign, encrypt, verify or decrypt on every message in DIR in one process
(keys loaded once), each result to the file of the same name in the
output directory, written atomically and only on success.  The exit code
is the worst of the messages'; each failure is named on stderr; a summary
line ends stderr; `verify --json` prints one line per file.

Every output is checked with `openssl cms`, not by smimegate.
"""

import json
import os
import re
import signal
import stat
import subprocess
import time

import pytest

from smime_util import (mime_entity, msg_attachment, msg_big, msg_crlf,
                        msg_8bit, msg_plain_lf, msg_utf8_subject, openssl_decrypt,
                        openssl_encrypt, openssl_sign, openssl_verify,
                        text_of)

T = 120

MESSAGES = {
    "01-plain.eml": msg_plain_lf,
    "02-crlf.eml": msg_crlf,
    "03-utf8.eml": msg_utf8_subject,
    "04-8bit.eml": msg_8bit,
    "05-attachment.eml": msg_attachment,
}


def sign_args(pki):
    return ["sign", "--signer", pki / "alice.pem", "--key",
            pki / "alice.key", "--certfile", pki / "inter.pem"]


def fill(d, messages):
    d.mkdir(exist_ok=True)
    for name, data in messages.items():
        (d / name).write_bytes(data() if callable(data) else data)
    return d


def summary(proc):
    return proc.stderr.decode().strip().splitlines()[-1]


def failures(proc):
    return [ln for ln in proc.stderr.decode().splitlines()[:-1]]


def visible(d):
    return sorted(p.name for p in d.iterdir())


def test_sign_batch_every_output_verifies_with_openssl(run, pki, tmp_path):
    src = fill(tmp_path / "in", MESSAGES)
    out = tmp_path / "out"
    out.mkdir()
    proc = run(sign_args(pki) + ["--in-dir", src, "--out-dir", out],
               timeout=T)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    assert summary(proc) == "smimegate: sign: 5 messages: 5 done, 0 failed"
    assert visible(out) == sorted(MESSAGES), "missing or temporary files"
    for name, make in MESSAGES.items():
        data = (out / name).read_bytes()
        assert b"multipart/signed" in data, name
        content = openssl_verify(pki, data).stdout
        assert text_of(content) == text_of(make()), name


def test_encrypt_batch_decrypts_with_openssl(run, pki, tmp_path):
    src = fill(tmp_path / "in", MESSAGES)
    out = tmp_path / "out"
    out.mkdir()
    proc = run(["encrypt", "--recipient", pki / "bob.pem",
                "--recipient", pki / "carol-ec.pem",
                "--cipher", "aes-256-gcm", "--in-dir", src,
                "--out-dir", out], timeout=T)
    assert proc.returncode == 0, proc.stderr
    assert visible(out) == sorted(MESSAGES)
    for name, make in MESSAGES.items():
        data = (out / name).read_bytes()
        for who in ("bob", "carol-ec"):
            plain = openssl_decrypt(pki, data, who=who).stdout
            assert text_of(plain) == text_of(make()), (name, who)


def test_decrypt_batch_of_openssl_mail(run, pki, tmp_path):
    src = tmp_path / "in"
    fill(src, {name: openssl_encrypt(pki, mime_entity(make()))
               for name, make in MESSAGES.items()})
    out = tmp_path / "out"
    out.mkdir()
    proc = run(["decrypt", "--cert", pki / "bob.pem", "--key",
                pki / "bob.key", "--in-dir", src, "--out-dir", out],
               timeout=T)
    assert proc.returncode == 0, proc.stderr
    for name, make in MESSAGES.items():
        assert text_of((out / name).read_bytes()) == text_of(make()), name


def verify_inputs(pki):
    good = openssl_sign(pki, mime_entity(msg_plain_lf()))
    tampered = bytearray(good)
    tampered[tampered.index(b"Hello")] ^= 0x20
    return {"a-good.eml": good, "b-tampered.eml": bytes(tampered),
            "c-unsigned.eml": msg_plain_lf(),
            "d-good.eml": openssl_sign(pki, mime_entity(msg_crlf()),
                                       md="sha512")}


def test_verify_batch_mixed_results(run, pki, tmp_path):
    src = fill(tmp_path / "in", verify_inputs(pki))
    out = tmp_path / "out"
    out.mkdir()
    (out / "b-tampered.eml").write_bytes(b"from an earlier run\n")
    proc = run(["verify", "--trust", pki / "trust.pem", "--in-dir", src,
                "--out-dir", out], timeout=T)
    # worst of the four: not S/MIME (2) over a bad signature (1)
    assert proc.returncode == 2, proc.stderr
    assert summary(proc) == ("smimegate: verify: 4 messages: 2 done, "
                             "2 failed")
    lines = failures(proc)
    assert len(lines) == 2, lines
    assert lines[0].startswith("smimegate: verify: b-tampered.eml: "
                               "bad-signature: "), lines
    assert lines[1].startswith("smimegate: verify: c-unsigned.eml: "
                               "not-smime: "), lines
    # outputs only for the good ones; as with --out, a failed message
    # leaves an existing file alone
    assert visible(out) == ["a-good.eml", "b-tampered.eml", "d-good.eml"]
    assert (out / "b-tampered.eml").read_bytes() == b"from an earlier run\n"
    assert text_of((out / "a-good.eml").read_bytes()) == \
        text_of(msg_plain_lf())
    assert b"multipart/signed" not in (out / "d-good.eml").read_bytes()


def test_verify_batch_exit_1_when_worst_is_a_bad_signature(run, pki,
                                                            tmp_path):
    inputs = verify_inputs(pki)
    del inputs["c-unsigned.eml"]
    src = fill(tmp_path / "in", inputs)
    out = tmp_path / "out"
    out.mkdir()
    proc = run(["verify", "--trust", pki / "trust.pem", "--in-dir", src,
                "--out-dir", out], timeout=T)
    assert proc.returncode == 1, proc.stderr
    assert visible(out) == ["a-good.eml", "d-good.eml"]


def test_verify_batch_json_one_line_per_file(run, pki, tmp_path):
    src = fill(tmp_path / "in", verify_inputs(pki))
    proc = run(["verify", "--trust", pki / "trust.pem", "--json",
                "--in-dir", src], timeout=T)
    assert proc.returncode == 2, proc.stderr
    rows = [json.loads(ln) for ln in proc.stdout.decode().splitlines()]
    assert [(r["file"], r["status"]) for r in rows] == [
        ("a-good.eml", "ok"), ("b-tampered.eml", "bad-signature"),
        ("c-unsigned.eml", "not-smime"), ("d-good.eml", "ok")]
    assert rows[0]["signer_emails"] == ["alice@example.com"]
    assert rows[0]["chain_ok"] and rows[0]["signature_ok"]
    assert rows[1]["signature_ok"] is False
    assert rows[3]["digest"] == "sha512"
    # the reason stderr gives, also in the line
    assert rows[0]["error"] is None and rows[3]["error"] is None
    assert "does not match the content" in rows[1]["error"]
    assert "not signed" in rows[2]["error"]
    for r in rows[1:3]:
        assert f"verify: {r['file']}: {r['status']}: {r['error']}" in \
            proc.stderr.decode()
    assert visible(tmp_path) == ["in"], "--json alone writes no messages"


def test_skips_hidden_files_and_directories_reports_fifo(run, pki,
                                                          tmp_path):
    src = fill(tmp_path / "in", {"m1.eml": msg_plain_lf,
                                 ".draft.eml": msg_plain_lf,
                                 "bad\nname.eml": msg_plain_lf})
    (src / "done").mkdir()
    fill(src / "done", {"old.eml": msg_plain_lf})
    (src / "linked-dir").symlink_to(src / "done")
    os.mkfifo(src / "pipe")
    out = tmp_path / "out"
    out.mkdir()
    proc = run(sign_args(pki) + ["--in-dir", src, "--out-dir", out],
               timeout=T)  # a FIFO opened for reading must not block
    assert proc.returncode == 2, proc.stderr
    assert failures(proc) == [
        "smimegate: sign: pipe: io: not a regular file, left alone"]
    assert summary(proc) == "smimegate: sign: 3 messages: 2 done, 1 failed"
    assert visible(out) == ["bad\nname.eml", "m1.eml"]
    assert stat.S_ISFIFO(os.lstat(src / "pipe").st_mode)
    openssl_verify(pki, (out / "bad\nname.eml").read_bytes())


def test_file_name_cannot_forge_stderr_lines(run, pki, tmp_path):
    src = fill(tmp_path / "in",
               {"x\nsmimegate: sign: 9 messages: 9 done": b"no header\n"})
    out = tmp_path / "out"
    out.mkdir()
    proc = run(sign_args(pki) + ["--in-dir", src, "--out-dir", out],
               timeout=T)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("smimegate: sign: x?smimegate: sign: 9 "
                               "messages: 9 done: malformed-mime: "), lines
    assert visible(out) == []


def test_same_directory_refused_nothing_written(run, pki, tmp_path):
    src = fill(tmp_path / "in", {"m1.eml": msg_plain_lf})
    (tmp_path / "alias").symlink_to(src)
    proc = run(sign_args(pki) + ["--in-dir", src, "--out-dir",
                                 tmp_path / "alias"], timeout=T)
    assert proc.returncode == 2
    assert b"same directory" in proc.stderr
    assert visible(src) == ["m1.eml"]
    assert (src / "m1.eml").read_bytes() == msg_plain_lf()


@pytest.mark.parametrize("extra, reason", [
    (["--in-dir", "IN", "--out-dir", "OUT", "--in", "IN/m1.eml"],
     b"instead of --in and --out"),
    (["--in-dir", "IN", "--out-dir", "OUT", "--out", "OUT/x"],
     b"instead of --in and --out"),
    (["--in-dir", "IN"], b"--in-dir wants --out-dir"),
    (["--out-dir", "OUT"], b"--out-dir goes with --in-dir"),
])
def test_usage_errors(run, pki, tmp_path, extra, reason):
    src = fill(tmp_path / "in", {"m1.eml": msg_plain_lf})
    out = tmp_path / "out"
    out.mkdir()
    args = sign_args(pki) + [a.replace("IN", str(src)).replace("OUT",
                                                                str(out))
                             for a in extra]
    proc = run(args, input=msg_plain_lf(), timeout=T)
    assert proc.returncode == 2, proc.stderr
    assert reason in proc.stderr, proc.stderr
    assert proc.stdout == b""
    assert visible(out) == []


def test_missing_directory_and_bad_key(run, pki, tmp_path):
    src = fill(tmp_path / "in", {"m1.eml": msg_plain_lf})
    out = tmp_path / "out"
    out.mkdir()
    proc = run(sign_args(pki) + ["--in-dir", tmp_path / "nowhere",
                                 "--out-dir", out], timeout=T)
    assert proc.returncode == 2
    assert b"--in-dir" in proc.stderr and b"No such file" in proc.stderr
    proc = run(sign_args(pki) + ["--in-dir", src, "--out-dir",
                                 tmp_path / "nowhere"], timeout=T)
    assert proc.returncode == 2
    assert b"--out-dir" in proc.stderr
    # a key that does not load stops the batch before any message
    proc = run(["sign", "--signer", pki / "alice.pem", "--key",
                pki / "bob.key", "--in-dir", src, "--out-dir", out],
               timeout=T)
    assert proc.returncode in (1, 2), proc.stderr
    assert b"messages:" not in proc.stderr
    assert visible(out) == []


def test_empty_directory(run, pki, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    proc = run(sign_args(pki) + ["--in-dir", tmp_path / "in",
                                 "--out-dir", tmp_path / "out"], timeout=T)
    assert proc.returncode == 0, proc.stderr
    assert summary(proc) == "smimegate: sign: 0 messages: 0 done, 0 failed"


# ---- --jobs N: worker processes ----

@pytest.mark.parametrize("jobs", ["3", "0"])  # 0: one per CPU
def test_sign_jobs_every_output_verifies(run, pki, tmp_path, jobs):
    src = fill(tmp_path / "in", MESSAGES)
    fill(src, {f"more-{i}.eml": msg_plain_lf for i in range(4)})
    out = tmp_path / "out"
    out.mkdir()
    proc = run(sign_args(pki) + ["--in-dir", src, "--out-dir", out,
                                 "--jobs", jobs], timeout=T)
    assert proc.returncode == 0, proc.stderr
    assert summary(proc) == "smimegate: sign: 9 messages: 9 done, 0 failed"
    assert failures(proc) == []
    assert visible(out) == visible(src)
    for name in visible(src):
        content = openssl_verify(pki, (out / name).read_bytes()).stdout
        assert text_of(content) == text_of((src / name).read_bytes()), name


@pytest.mark.parametrize("forks_ok, lines", [
    # one of three workers starts: it takes every message
    ("1", ["smimegate: sign: cannot start worker 2: Resource temporarily "
           "unavailable",
           "smimegate: sign: cannot start worker 3: Resource temporarily "
           "unavailable"]),
    # none starts: the batch goes on in the one process
    ("0", ["smimegate: sign: cannot start worker 1: Resource temporarily "
           "unavailable",
           "smimegate: sign: cannot start worker 2: Resource temporarily "
           "unavailable",
           "smimegate: sign: cannot start worker 3: Resource temporarily "
           "unavailable",
           "smimegate: sign: no worker started; going on alone"]),
])
def test_workers_that_cannot_start_leave_their_share_to_others(
        run, pki, tmp_path, shim, forks_ok, lines):
    # fork fails with EAGAIN, as at a process limit (tests/e2e/shim/
    # fork_fails.c: root is not held to RLIMIT_NPROC)
    src = fill(tmp_path / "in", MESSAGES)
    out = tmp_path / "out"
    out.mkdir()
    proc = run(sign_args(pki) + ["--in-dir", src, "--out-dir", out,
                                 "--jobs", "3"], timeout=T,
               env=dict(shim("fork_fails"), SHIM_FORKS_OK=forks_ok))
    assert proc.returncode == 0, proc.stderr
    assert failures(proc) == lines
    assert summary(proc) == "smimegate: sign: 5 messages: 5 done, 0 failed"
    assert visible(out) == sorted(MESSAGES)
    for name, make in MESSAGES.items():
        content = openssl_verify(pki, (out / name).read_bytes()).stdout
        assert text_of(content) == text_of(make()), name


def test_verify_jobs_json_lines_whole_and_complete(run, pki, tmp_path):
    inputs = verify_inputs(pki)
    for i in range(6):
        inputs[f"e-good-{i}.eml"] = inputs["a-good.eml"]
    src = fill(tmp_path / "in", inputs)
    proc = run(["verify", "--trust", pki / "trust.pem", "--json",
                "--in-dir", src, "--jobs", "4"], timeout=T)
    assert proc.returncode == 2, proc.stderr
    rows = [json.loads(ln) for ln in proc.stdout.decode().splitlines()]
    got = sorted((r["file"], r["status"]) for r in rows)
    want = sorted([("a-good.eml", "ok"), ("b-tampered.eml", "bad-signature"),
                   ("c-unsigned.eml", "not-smime"), ("d-good.eml", "ok")]
                  + [(f"e-good-{i}.eml", "ok") for i in range(6)])
    assert got == want
    assert summary(proc) == ("smimegate: verify: 10 messages: 8 done, "
                             "2 failed")
    assert sorted(ln.split(":")[2].strip() for ln in failures(proc)) == [
        "b-tampered.eml", "c-unsigned.eml"]


@pytest.mark.parametrize("extra, reason", [
    (["--jobs", "2"], b"--jobs goes with --in-dir"),
    (["--jobs", "0"], b"--jobs goes with --in-dir"),
    (["--in-dir", "IN", "--out-dir", "OUT", "--jobs", "-1"],
     b"--jobs wants 0 (one per CPU) to 256"),
    (["--in-dir", "IN", "--out-dir", "OUT", "--jobs", "257"],
     b"--jobs wants 0 (one per CPU) to 256"),
    (["--in-dir", "IN", "--out-dir", "OUT", "--jobs", "2x"],
     b"--jobs wants 0 (one per CPU) to 256"),
])
def test_jobs_usage_errors(run, pki, tmp_path, extra, reason):
    test_usage_errors(run, pki, tmp_path, extra, reason)


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(d))
    return kids


def start_big_batch(smimegate, pki, tmp_path, count, jobs):
    src = tmp_path / "in"
    src.mkdir()
    big = msg_big(12 << 20)
    for i in range(count):
        (src / f"m{i}.eml").write_bytes(big)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [str(a) for a in [smimegate] + sign_args(pki)
         + ["--in-dir", src, "--out-dir", out, "--jobs", str(jobs)]],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    deadline = time.monotonic() + T
    while len(kids := children_of(proc.pid)) < jobs:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.001)
    return proc, kids, out


def test_worker_killed_is_reported(smimegate, pki, tmp_path):
    proc, kids, out = start_big_batch(smimegate, pki, tmp_path, 6, 2)
    os.kill(kids[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=T)
    assert proc.returncode == 2, err
    assert re.search(rb"smimegate: sign: worker [12] ended abnormally "
                     rb"\(signal 9\)", err), err
    # the other worker took the rest: at most the message the dead one
    # was on is missing, and what is there is complete
    done = sorted(p.name for p in out.iterdir())
    assert len(done) >= 5, done
    for name in done:
        openssl_verify(pki, (out / name).read_bytes())


def test_workers_die_with_the_batch(smimegate, pki, tmp_path):
    proc, kids, out = start_big_batch(smimegate, pki, tmp_path, 6, 2)
    proc.kill()
    proc.wait(T)
    proc.stderr.close()
    deadline = time.monotonic() + T
    while any(children_alive(k) for k in kids):
        assert time.monotonic() < deadline, "workers outlived the batch"
        time.sleep(0.01)


def children_alive(pid):
    """PID exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("cmd", ["sign", "encrypt", "verify", "decrypt"])
def test_help_names_batch_options_and_exit_codes(run, cmd):
    proc = run([cmd, "--help"], timeout=T)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.startswith(f"usage: smimegate {cmd} ")
    for want in ("--in-dir DIR", "--jobs N", "exit: 0 done; 1 ",
                 "2 usage error"):
        assert want in out, out
