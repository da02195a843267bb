"""`make run`'s job: `smimegate demo` creates throw-away certificates and
signs, encrypts, decrypts and verifies a sample message.  The files it
leaves are checked with OpenSSL, not with smimegate."""
import os
import stat
import subprocess

from smime_util import assert_clean


def openssl(*args, input=None):
    return subprocess.run(["openssl", *map(str, args)], input=input,
                          capture_output=True, timeout=60)


def test_demo_runs_every_step(smimegate, tmp_path):
    demo = tmp_path / "demo"
    proc = subprocess.run([smimegate, "demo", "--dir", demo],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc)
    out = proc.stdout.decode()
    for step in ("sign", "encrypt", "decrypt", "verify"):
        assert f"  {step}" in out and " ok " in out, out
    assert "chain trusted" in out

    # Private keys are never readable by others.
    for key in ("ca.key", "alice.key", "bob.key"):
        assert stat.S_IMODE(os.stat(demo / key).st_mode) == 0o600

    # OpenSSL verifies the signature against the demo CA ...
    v = openssl("cms", "-verify", "-CAfile", demo / "ca.pem",
                "-in", demo / "signed.eml")
    assert v.returncode == 0, v.stderr
    assert b"Gr=C3=BC=C3=9Fe" in v.stdout  # the 8bit body, re-encoded
    # ... and decrypts the envelope with Bob's key.
    d = openssl("cms", "-decrypt", "-recip", demo / "bob.pem",
                "-inkey", demo / "bob.key", "-in", demo / "encrypted.eml")
    assert d.returncode == 0, d.stderr
    assert b"multipart/signed" in d.stdout
    # The verified message is the sample again, under its own headers.
    verified = (demo / "verified.eml").read_bytes()
    assert b"Subject: =?UTF-8?B?" in verified
    assert b"Hello Bob," in verified
