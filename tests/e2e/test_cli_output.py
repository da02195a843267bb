"""Where `--out` writes: a regular file is replaced atomically (a temporary
file renamed over it, only on success); anything else that already exists
(a FIFO, a character device such as /dev/null, a socket) is written to,
never replaced; a symbolic link is followed and stays a link.  A regular
file is written unnamed (O_TMPFILE) until complete, so that a command
killed half-way leaves nothing behind.

The outputs are checked with `openssl cms -verify`, not by smimegate.
"""

import os
import signal
import stat
import subprocess
import threading
import time

import pytest

from smime_util import (msg_big, msg_plain_lf, openssl_sign,
                        openssl_verify, mime_entity)

T = 60


def sign_args(pki):
    return ["sign", "--signer", pki / "alice.pem", "--key",
            pki / "alice.key", "--certfile", pki / "inter.pem"]


class FifoReader:
    """Reads everything written to a FIFO, in a thread (opening a FIFO for
    writing blocks until a reader has it open)."""

    def __init__(self, path):
        self.data = None
        self.thread = threading.Thread(target=self._read, args=(path,))
        self.thread.start()

    def _read(self, path):
        with open(path, "rb") as f:
            self.data = f.read()

    def join(self):
        self.thread.join(T)
        assert not self.thread.is_alive(), "FIFO reader still waiting"
        return self.data


def test_out_fifo_is_written_not_replaced(run, pki, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    proc = run(sign_args(pki) + ["--out", fifo], input=msg_plain_lf(),
               timeout=T)
    data = reader.join()
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced"
    assert list(tmp_path.iterdir()) == [fifo], "a temporary file was left"
    assert b"multipart/signed" in data
    openssl_verify(pki, data)


def test_out_fifo_gets_nothing_when_verify_fails(run, pki, tmp_path):
    signed = bytearray(openssl_sign(pki, mime_entity(msg_plain_lf())))
    at = signed.index(b"Hello")
    signed[at] ^= 0x20  # tamper with the signed text
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    proc = run(["verify", "--trust", pki / "trust.pem", "--out", fifo],
               input=bytes(signed), timeout=T)
    data = reader.join()
    assert proc.returncode == 1, proc.stderr
    assert data == b""
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_out_link_to_own_stdout_is_a_stream(run, pki, tmp_path):
    # Like --out /dev/stdout, without touching /dev: a link to the pipe
    # that run() reads is written to, and neither link nor pipe replaced.
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    proc = run(sign_args(pki) + ["--out", link], input=msg_plain_lf(),
               timeout=T)
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(link) == "/proc/self/fd/1"
    assert list(tmp_path.iterdir()) == [link], "a temporary file was left"
    assert b"multipart/signed" in proc.stdout
    openssl_verify(pki, proc.stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_out_character_device_is_not_replaced(run, pki, tmp_path):
    # A private copy of /dev/null (1, 3): what `--out /dev/null` would meet.
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    proc = run(sign_args(pki) + ["--out", null], input=msg_plain_lf(),
               timeout=T)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode), "the device was replaced"
    assert list(tmp_path.iterdir()) == [null], "a temporary file was left"


def test_out_symlink_is_followed(run, pki, tmp_path):
    target = tmp_path / "real.eml"
    target.write_bytes(b"old content\n")
    link = tmp_path / "link.eml"
    link.symlink_to(target)
    proc = run(sign_args(pki) + ["--out", link], input=msg_plain_lf(),
               timeout=T)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink(), "the link was replaced by a file"
    assert os.readlink(link) == str(target)
    openssl_verify(pki, target.read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.eml",
                                                         "real.eml"]


def test_out_existing_file_kept_on_failure(run, pki, tmp_path):
    out = tmp_path / "out.eml"
    out.write_bytes(b"keep me\n")
    proc = run(["verify", "--trust", pki / "trust.pem", "--out", out],
               input=msg_plain_lf(), timeout=T)
    assert proc.returncode == 2, proc.stderr
    assert out.read_bytes() == b"keep me\n"
    assert list(tmp_path.iterdir()) == [out], "a temporary file was left"


def test_out_directory_is_an_error(run, pki, tmp_path):
    proc = run(sign_args(pki) + ["--out", tmp_path], input=msg_plain_lf(),
               timeout=T)
    assert proc.returncode == 2
    assert b"Is a directory" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_store_outputs_to_streams(store, tmp_path):
    # `cert export --p12` to a FIFO and `cert csr --out` to our own stdout:
    # written, not replaced, and readable by openssl.
    from smime_util import openssl
    from store_util import write_passfile
    passfile = write_passfile(tmp_path)
    store.ok("cert", "create", "--name", "s", "--cn", "Stream Test",
             "--san-email", "stream@example.com", "--key", "rsa:2048")
    fifo = tmp_path / "p12.fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    store.ok("cert", "export", "s", "--p12", fifo, "--pass-file", passfile)
    p12 = reader.join()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced"
    certs = openssl("pkcs12", "-nokeys", "-passin", f"file:{passfile}",
                    input=p12).stdout
    assert b"BEGIN CERTIFICATE" in certs

    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    csr = store.ok("cert", "csr", "t", "--out", link, "--cn", "T",
                   "--san-email", "t@example.com", "--key", "rsa:2048")
    assert os.readlink(link) == "/proc/self/fd/1"
    v = openssl("req", "-verify", "-noout", input=csr, check=False)
    assert v.returncode == 0, v.stderr


def unnamed_file_open(pid, directory):
    """True while process PID holds an unnamed (O_TMPFILE) file of
    DIRECTORY open: /proc shows it as "DIR/#INODE (deleted)"."""
    fds = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fds)
    except FileNotFoundError:
        return False
    for n in names:
        try:
            target = os.readlink(f"{fds}/{n}")
        except OSError:
            continue
        if target.startswith(f"{directory}/#"):
            return True
    return False


def kill_while_writing(smimegate, args, out_dir, sig, ready=None, env=None,
                       writing=unnamed_file_open):
    """Starts smimegate ARGS, waits until WRITING(pid, OUT_DIR) says it
    writes an output there (and READY() is true), sends SIG; returns the
    exit status."""
    proc = subprocess.Popen([str(a) for a in [smimegate] + args],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE,
                            env=dict(os.environ, **(env or {})))
    try:
        deadline = time.monotonic() + T
        while not ((ready is None or ready())
                   and writing(proc.pid, out_dir)):
            assert proc.poll() is None, (
                "finished before it could be interrupted: "
                + proc.stderr.read().decode(errors="replace"))
            assert time.monotonic() < deadline, "no output file appeared"
            time.sleep(0.0005)
        proc.send_signal(sig)
        proc.wait(T)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc.stderr.close()
    return proc.returncode


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_while_writing_leaves_nothing(smimegate, pki, tmp_path, sig):
    # The output is an unnamed file until it is complete: no NAME.tmp*
    # left behind, even after SIGKILL, and an existing file is untouched.
    src = tmp_path / "big.eml"
    src.write_bytes(msg_big(48 << 20))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "signed.eml").write_bytes(b"previous\n")
    rc = kill_while_writing(smimegate, sign_args(pki) + [
        "--in", src, "--out", out_dir / "signed.eml"], out_dir, sig)
    assert rc == -sig
    assert sorted(p.name for p in out_dir.iterdir()) == ["signed.eml"]
    assert (out_dir / "signed.eml").read_bytes() == b"previous\n"


def test_batch_interrupted_keeps_finished_outputs(smimegate, pki, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    big = msg_big(12 << 20)
    for i in range(6):
        (src / f"m{i}.eml").write_bytes(big)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # interrupted while writing the second message's output or a later one
    rc = kill_while_writing(
        smimegate, sign_args(pki) + ["--in-dir", src, "--out-dir", out_dir],
        out_dir, signal.SIGINT, ready=(out_dir / "m0.eml").exists)
    assert rc == -signal.SIGINT
    done = sorted(p.name for p in out_dir.iterdir())
    assert done and len(done) < 6, done
    assert done == [f"m{i}.eml" for i in range(len(done))], done
    for name in done:  # every file there is complete
        openssl_verify(pki, (out_dir / name).read_bytes())


# ---- file systems without O_TMPFILE (NFS, some FUSE) ----

@pytest.fixture(scope="module")
def no_tmpfile(shim):
    """The environment in which open(O_TMPFILE) fails with EOPNOTSUPP
    (tests/e2e/shim/no_tmpfile.c)."""
    return shim("no_tmpfile")


def test_without_o_tmpfile_outputs_still_work(run, pki, tmp_path,
                                              no_tmpfile):
    spool = tmp_path / "spool"
    spool.mkdir()
    env = dict(no_tmpfile, TMPDIR=str(spool))
    out = tmp_path / "out"
    out.mkdir()
    # stdin spooled by the library, the output by a named temporary file
    proc = run(sign_args(pki) + ["--out", out / "signed.eml"],
               input=msg_plain_lf(), timeout=T, env=env)
    assert proc.returncode == 0, proc.stderr
    openssl_verify(pki, (out / "signed.eml").read_bytes())
    # verify's output to a FIFO is spooled first
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    proc = run(["verify", "--trust", pki / "trust.pem", "--out", fifo],
               input=(out / "signed.eml").read_bytes(), timeout=T, env=env)
    data = reader.join()
    assert proc.returncode == 0, proc.stderr
    assert b"Hello" in data
    assert list(out.iterdir()) == [out / "signed.eml"]
    assert list(spool.iterdir()) == [], "a spool file was left"


def named_tmp_open(pid, directory):
    return any(p.name.startswith("signed.eml.tmp")
               for p in directory.iterdir())


def test_without_o_tmpfile_sigterm_removes_the_temporary(
        smimegate, pki, tmp_path, no_tmpfile):
    src = tmp_path / "big.eml"
    src.write_bytes(msg_big(48 << 20))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc = kill_while_writing(smimegate, sign_args(pki) + [
        "--in", src, "--out", out_dir / "signed.eml"], out_dir,
        signal.SIGTERM, env=no_tmpfile, writing=named_tmp_open)
    assert rc == -signal.SIGTERM
    assert list(out_dir.iterdir()) == [], "the temporary file was left"


def test_csr_out_replaces_a_file_whole_and_readable(store, tmp_path):
    # `cert csr --out` goes through the same output code: the old file is
    # replaced only by a complete request, which is public (0644 less the
    # umask, not the 0600 of messages), and no temporary is left.
    from smime_util import openssl
    req = tmp_path / "req.pem"
    req.write_bytes(b"an older request\n")
    os.chmod(req, 0o600)
    store.ok("cert", "csr", "r", "--out", req, "--cn", "R",
             "--san-email", "r@example.com", "--key", "ec:p256")
    um = os.umask(0)
    os.umask(um)
    assert stat.S_IMODE(os.stat(req).st_mode) == 0o644 & ~um
    assert [p.name for p in tmp_path.iterdir()
            if p.name.startswith("req")] == ["req.pem"]
    v = openssl("req", "-verify", "-noout", "-in", req, check=False)
    assert v.returncode == 0, v.stderr
