"""Helpers for the GnuPG (gpgsm) interop tests.

Each GpgsmHome is a throw-away GNUPGHOME under /tmp (short path: the
agent's socket path must stay under ~100 bytes).  trustlist.txt is written
before the first gpgsm call, i.e. before gpg-agent starts and reads it; the
agent may not mark further roots trusted (no-allow-mark-trusted), so only
the roots given here are anchors.  CRL and policy checks are off (offline
test PKI).  close() kills the agent and removes the directory.

Facts about gpgsm 2.2.40 used here:
- It writes BER with indefinite lengths; both signed content and encrypted
  content are split into 4096-byte primitive OCTET STRING chunks.
- It cannot import OpenSSL 3's default PKCS#12 (AES/PBKDF2); use the legacy
  (3DES) one.  About 1 legacy file in 100, whoever wrote it, gets a wrong
  3DES key from gpgsm's KDF and is refused (gpgsm_p12.py); import_p12
  predicts that and asks for the file again with new salts.  The imported
  key stays protected by the PKCS#12 passphrase, so signing and
  decrypting need it again (loopback pinentry).
- With --status-fd the verdict is a GOODSIG/BADSIG/EXPKEYSIG... line; a good
  signature also gives VALIDSIG <fpr> ... and TRUST_FULLY.
- It cannot decrypt a RecipientInfo identified by subjectKeyIdentifier
  (only issuerAndSerialNumber): "recp N - error getting info: General error"
  then "No secret key", exit 2.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gpgsm_p12 import gpgsm22_refuses
from nss_util import TOOL_TIMEOUT, ToolError, pem_certs_der


def fingerprint(pem_path, index: int = 0) -> str:
    """SHA-1 fingerprint (upper-case hex, no colons) of a PEM certificate."""
    return hashlib.sha1(pem_certs_der(pem_path)[index]).hexdigest().upper()


def colon_fpr(fpr: str) -> str:
    return ":".join(fpr[i:i + 2] for i in range(0, len(fpr), 2))


@dataclass
class GpgsmResult:
    rc: int
    status: list[str]       # "[GNUPG:] " lines without the prefix
    output: bytes           # data written with -o
    stderr: str

    def has(self, keyword: str) -> bool:
        return any(s.split(" ", 1)[0] == keyword for s in self.status)

    def lines(self, keyword: str) -> list[str]:
        return [s for s in self.status if s.split(" ", 1)[0] == keyword]


class GpgsmHome:
    def __init__(self, trusted_roots=(), passphrase: str = "",
                 template: "GpgsmHome | None" = None):
        """A new GNUPGHOME trusting TRUSTED_ROOTS; or, with TEMPLATE, a
        copy of that home (its agent is stopped first, the copy gets its
        own agent).  Copying saves the ~1 s a PKCS#12 import costs."""
        self.home = Path(tempfile.mkdtemp(prefix="gsm.", dir="/tmp"))
        os.chmod(self.home, 0o700)
        self.passphrase = passphrase
        self.env = dict(os.environ, GNUPGHOME=str(self.home), LC_ALL="C")
        self.env.pop("GPG_AGENT_INFO", None)
        self._n = 0
        if template is not None:
            template.stop_agent()
            shutil.copytree(template.home, self.home, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(
                                "S.*", "*.lock", ".#lk*", "out*", "data*",
                                "sig*", "enc*"))
            self.passphrase = template.passphrase
            return
        (self.home / "gpgsm.conf").write_text(
            "disable-crl-checks\ndisable-policy-checks\ndisable-dirmngr\n")
        (self.home / "gpg-agent.conf").write_text(
            "allow-loopback-pinentry\nno-allow-mark-trusted\n")
        lines = []
        for root in trusted_roots:
            for i in range(len(pem_certs_der(root))):
                lines.append(colon_fpr(fingerprint(root, i)) + " S\n")
        # Written before anything starts gpg-agent, which reads it once.
        (self.home / "trustlist.txt").write_text("".join(lines))

    def stop_agent(self):
        subprocess.run(["gpgconf", "--kill", "all"], env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=TOOL_TIMEOUT)

    def close(self):
        self.stop_agent()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def reload_agent(self):
        """Make a running agent re-read trustlist.txt."""
        subprocess.run(["gpgconf", "--reload", "gpg-agent"], env=self.env,
                       check=True, timeout=TOOL_TIMEOUT)

    # -- running gpgsm ----------------------------------------------------

    def _file(self, data: bytes, name: str) -> Path:
        self._n += 1
        p = self.home / f"{name}{self._n}"
        p.write_bytes(data)
        return p

    def gpgsm(self, args, *, passphrase: bool = False, output: bool = True,
              check: bool = False) -> GpgsmResult:
        """Run gpgsm in batch mode; status lines come from --status-fd 1."""
        self._n += 1
        out = self.home / f"out{self._n}"
        cmd = ["gpgsm", "--batch", "--status-fd", "1"]
        stdin = None
        if passphrase:
            cmd += ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
            stdin = (self.passphrase + "\n").encode()
        if output:
            cmd += ["--output", str(out)]
        cmd += [str(a) for a in args]
        proc = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=self.env,
                              timeout=TOOL_TIMEOUT)
        status = [l[len("[GNUPG:] "):] for l in
                  proc.stdout.decode("utf-8", "replace").splitlines()
                  if l.startswith("[GNUPG:] ")]
        res = GpgsmResult(proc.returncode, status,
                          out.read_bytes() if out.exists() else b"",
                          proc.stderr.decode("utf-8", "replace"))
        if check and res.rc != 0:
            raise ToolError(f"{' '.join(cmd)} exited {res.rc}\n"
                            f"status: {res.status}\nstderr: {res.stderr}")
        return res

    def import_certs(self, *pem_paths):
        for p in pem_paths:
            self.gpgsm(["--import", p], output=False, check=True)

    def import_p12(self, p12_path, passphrase: str, remake=None):
        """Import a (legacy, 3DES) PKCS#12; its passphrase keeps protecting
        the key in the agent.  When gpgsm 2.2's KDF bug would refuse the
        file, REMAKE() writes the same key and certificates again (new
        random salts) and returns the new file's path; without REMAKE that
        is an error.  Any other refusal fails the import."""
        for _ in range(20):
            if not gpgsm22_refuses(Path(p12_path).read_bytes(), passphrase):
                break
            assert remake is not None, (
                f"{p12_path}: gpgsm 2.2 derives a wrong 3DES key for this "
                "file's salt (gpgsm_p12.py) and no way to write it again")
            p12_path = remake()
        else:
            raise AssertionError("20 PKCS#12 files in a row hit gpgsm's KDF bug")
        self.passphrase = passphrase
        res = self.gpgsm(["--import", p12_path], passphrase=True,
                         output=False, check=True)
        assert res.has("IMPORT_RES") or "secret keys imported: 1" in res.stderr, res

    # -- operations -------------------------------------------------------

    def verify(self, sig: bytes, data: bytes | None = None) -> GpgsmResult:
        """--verify an opaque SignedData (content to --output) or a detached
        one over DATA."""
        s = self._file(sig, "sig")
        if data is None:
            return self.gpgsm(["--verify", s])
        d = self._file(data, "data")
        return self.gpgsm(["--verify", s, d], output=False)

    def sign(self, data: bytes, signer_fpr: str, *, detached: bool) -> bytes:
        d = self._file(data, "data")
        res = self.gpgsm(["--local-user", signer_fpr, "--include-certs", "-2",
                          "--detach-sign" if detached else "--sign", d],
                         passphrase=True, check=True)
        assert res.has("SIG_CREATED"), res
        return res.output

    def encrypt(self, data: bytes, recipient_fprs, cipher: str | None = None) -> bytes:
        d = self._file(data, "data")
        args = []
        for f in recipient_fprs:
            args += ["--recipient", f]
        if cipher:
            args += ["--cipher-algo", cipher]
        res = self.gpgsm(args + ["--encrypt", d], check=True)
        return res.output

    def decrypt(self, cms: bytes) -> GpgsmResult:
        return self.gpgsm(["--decrypt", self._file(cms, "enc")], passphrase=True)

    def good_signature(self, res: GpgsmResult, signer_fpr: str) -> bool:
        """GOODSIG and VALIDSIG for SIGNER_FPR, trusted, no bad verdicts."""
        bad = ("BADSIG", "ERRSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG",
               "TRUST_UNDEFINED", "TRUST_NEVER")
        return (res.rc == 0 and res.has("GOODSIG") and res.has("TRUST_FULLY") and
                any(l.split()[1] == signer_fpr for l in res.lines("VALIDSIG")) and
                not any(res.has(b) for b in bad))
