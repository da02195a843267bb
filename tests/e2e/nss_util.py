"""Helpers for the NSS interop tests (cmsutil, certutil, pk12util).

NSS works on raw CMS (BER/DER), never on MIME.  Taking smimegate's output
apart is done with smime_util (extract_signed_part, extract_cms_der); this
module adds what both interop suites (NSS and gpgsm) need beyond that:
running the binary under test, wrapping a CMS object made by another tool
into a message, and comparing MIME entities by their decoded content.

Facts about cmsutil used here (NSS 3.87):
- ``cmsutil -D`` exits 0 even when a signature is bad; the verdict is in the
  ``signerN.status=...;`` lines that ``-h N`` writes ahead of the content
  ("GoodSignature" on success; e.g. "DigestMismatch",
  "SigningCertNotTrusted" otherwise).
- ``-h`` writes its header lines to the same stream as the content, so the
  status and the content are fetched by two separate runs.
- The database needs no password (``certutil -N --empty-password``), and
  ``-p ""`` is still passed so that nothing ever prompts.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from smime_util import assert_clean, leaf_parts, split_message

TOOL_TIMEOUT = 60

# ---------------------------------------------------------------------------
# Running tools


class ToolError(AssertionError):
    """A reference tool failed where the test needs it to succeed."""


def run_tool(args, *, input: bytes | None = None, env=None, check=True,
             cwd=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, cwd=cwd, timeout=TOOL_TIMEOUT)
    if check and proc.returncode != 0:
        raise ToolError(
            f"{' '.join(str(a) for a in args)} exited {proc.returncode}\n"
            f"stdout: {proc.stdout[-2000:]!r}\nstderr: {proc.stderr[-4000:]!r}")
    return proc


@dataclass
class SgResult:
    rc: int
    out: bytes          # the message written with --out
    stdout: bytes
    stderr: str

    def json(self):
        import json
        return json.loads(self.stdout.decode())


def run_smimegate(binary, args, message: bytes, workdir: Path | None = None) -> SgResult:
    """Run the binary under test: message from --in, result to --out."""
    wd = Path(tempfile.mkdtemp(prefix="sg.", dir=workdir))
    try:
        inp, out = wd / "in.eml", wd / "out.eml"
        inp.write_bytes(message)
        proc = subprocess.run([str(binary)] + [str(a) for a in args] +
                              ["--in", str(inp), "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=TOOL_TIMEOUT)
        assert_clean(proc)
        return SgResult(proc.returncode, out.read_bytes() if out.exists() else b"",
                        proc.stdout, proc.stderr.decode("utf-8", "replace"))
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def sg_ok(binary, args, message: bytes) -> bytes:
    """Run smimegate and require exit 0; the output message."""
    r = run_smimegate(binary, args, message)
    assert r.rc == 0, (f"smimegate {' '.join(map(str, args))} exited {r.rc}: "
                       f"{r.stderr.strip()} {r.stdout[:500]!r}")
    assert r.out, "smimegate wrote no output"
    return r.out


# ---------------------------------------------------------------------------
# PEM / certificate helpers (no OpenSSL needed)

_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----",
                     re.S)


def pem_certs_der(path) -> list[bytes]:
    """Every certificate in a PEM file, as DER."""
    data = Path(path).read_bytes()
    return [base64.b64decode(b"".join(m.group(1).split()))
            for m in _PEM_RE.finditer(data)]


def der_to_pem(der: bytes) -> bytes:
    b64 = base64.encodebytes(der).replace(b"\n", b"")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return (b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) +
            b"\n-----END CERTIFICATE-----\n")


# OIDs (DER content octets, with the 06 tag and length) to look for in CMS.
OID = {
    "sha256": bytes.fromhex("0609608648016503040201"),
    "sha384": bytes.fromhex("0609608648016503040202"),
    "sha512": bytes.fromhex("0609608648016503040203"),
    "aes-128-cbc": bytes.fromhex("0609608648016503040102"),
    "aes-256-cbc": bytes.fromhex("060960864801650304012a"),
    "aes-128-gcm": bytes.fromhex("0609608648016503040106"),
    "aes-256-gcm": bytes.fromhex("060960864801650304012e"),
    "des-ede3-cbc": bytes.fromhex("06082a864886f70d0307"),
    "rsaEncryption": bytes.fromhex("06092a864886f70d010101"),
    "rsaesOaep": bytes.fromhex("06092a864886f70d010107"),
    "signedData": bytes.fromhex("06092a864886f70d010702"),
    "envelopedData": bytes.fromhex("06092a864886f70d010703"),
    "authEnvelopedData": bytes.fromhex("060b2a864886f70d0109100117"),
}


def cms_content_type(der: bytes) -> str:
    """The outer contentType of a ContentInfo (BER or DER)."""
    # SEQUENCE (definite or indefinite length) then the OID.
    if not der or der[0] != 0x30:
        raise ValueError("not a CMS ContentInfo")
    i = 1
    if der[i] & 0x80:
        i += 1 + (der[i] & 0x7F)
    else:
        i += 1
    for name in ("signedData", "envelopedData", "authEnvelopedData"):
        if der[i:i + len(OID[name])] == OID[name]:
            return name
    raise ValueError("unknown CMS content type")


# ---------------------------------------------------------------------------
# NSS database


@dataclass
class NssDecoded:
    rc: int
    header: str                     # the -h lines
    statuses: list[str]             # signerN.status values, in order
    nsigners: int | None
    content: bytes                  # decoded content (empty with -n)
    stderr: bytes = b""

    @property
    def all_good(self) -> bool:
        return (self.rc == 0 and bool(self.statuses) and
                self.nsigners == len(self.statuses) and
                all(s == "GoodSignature" for s in self.statuses))


_STATUS_RE = re.compile(r"signer(\d+)\.status=([A-Za-z]+);")
_NSIGNERS_RE = re.compile(r"nsigners=(\d+);")


class NssDb:
    """A throw-away NSS database in a temporary directory."""

    def __init__(self, root: Path | None = None):
        self._own = root is None
        self.dir = Path(tempfile.mkdtemp(prefix="nss.")) if root is None else Path(root)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spec = f"sql:{self.dir}"
        self._n = 0
        run_tool(["certutil", "-N", "-d", self.spec, "--empty-password"])

    def close(self):
        if self._own:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- certificates and keys -------------------------------------------

    def _add_der(self, der: bytes, nick: str, trust: str):
        f = self.dir / f"import{self._n}.pem"
        self._n += 1
        f.write_bytes(der_to_pem(der))
        run_tool(["certutil", "-A", "-d", self.spec, "-n", nick, "-t", trust,
                  "-a", "-i", f])
        f.unlink()

    def add_anchor(self, pem_path, nick: str = "anchor"):
        """Trust every certificate in PEM_PATH as a CA for all uses."""
        for i, der in enumerate(pem_certs_der(pem_path)):
            self._add_der(der, nick if i == 0 else f"{nick}{i}", "C,C,C")

    def add_cert(self, pem_path, nick: str):
        """Add certificates without trust (intermediates, recipients)."""
        ders = pem_certs_der(pem_path)
        assert ders, f"no certificate in {pem_path}"
        for i, der in enumerate(ders):
            self._add_der(der, nick if i == 0 else f"{nick}{i}", ",,")

    def import_p12(self, p12_path, pass_file, nick: str, cert_pem=None):
        """Import a PKCS#12 so that its key's certificate is named NICK.

        The certificate is added first under NICK (if CERT_PEM is given);
        the PKCS#12's key then attaches to it and keeps that nickname.
        """
        if cert_pem is not None:
            self.add_cert(cert_pem, nick)
        run_tool(["pk12util", "-i", p12_path, "-d", self.spec,
                  "-w", pass_file, "-K", ""])
        out = run_tool(["certutil", "-K", "-d", self.spec]).stdout.decode()
        assert nick in out, f"key for {nick!r} not found after import:\n{out}"

    def list_certs(self) -> str:
        return run_tool(["certutil", "-L", "-d", self.spec]).stdout.decode()

    # -- CMS --------------------------------------------------------------

    def _tmp(self, data: bytes, name: str) -> Path:
        self._n += 1
        p = self.dir / f"{name}{self._n}"
        p.write_bytes(data)
        return p

    def sign(self, data: bytes, nick: str, *, detached: bool,
             digest: str = "SHA256", signing_time: bool = True,
             smime_caps: bool = True) -> bytes:
        """cmsutil -S: a SignedData over DATA (BER, as NSS writes it)."""
        inp = self._tmp(data, "sin")
        out = self.dir / f"sout{self._n}"
        args = ["cmsutil", "-S", "-d", self.spec, "-N", nick, "-H", digest,
                "-i", inp, "-o", out, "-p", ""]
        if detached:
            args.append("-T")
        if signing_time:
            args.append("-G")
        if smime_caps:
            args.append("-P")
        run_tool(args)
        return out.read_bytes()

    def encrypt(self, data: bytes, recipients: list[str]) -> bytes:
        """cmsutil -E: an EnvelopedData (NSS always uses AES-128-CBC)."""
        inp = self._tmp(data, "ein")
        out = self.dir / f"eout{self._n}"
        run_tool(["cmsutil", "-E", "-d", self.spec, "-r", ",".join(recipients),
                  "-i", inp, "-o", out])
        return out.read_bytes()

    def decode(self, cms: bytes, *, content: bytes | None = None,
               levels: int = 3) -> NssDecoded:
        """cmsutil -D: signer statuses (from -h) and the decoded content.

        Two runs: one with ``-h LEVELS -n`` for the verdict lines, one
        without ``-h`` for the content, because -h mixes both in one stream.
        """
        inp = self._tmp(cms, "din")
        base = ["cmsutil", "-D", "-d", self.spec, "-i", inp, "-p", ""]
        if content is not None:
            base += ["-c", self._tmp(content, "dct")]
        hdr = run_tool(base + ["-h", str(levels), "-n"], check=False)
        header = hdr.stdout.decode("latin-1")
        statuses = [s for _, s in sorted(
            (int(i), s) for i, s in _STATUS_RE.findall(header))]
        m = _NSIGNERS_RE.search(header)
        out = self.dir / f"dout{self._n}"
        body = run_tool(base + ["-o", out], check=False)
        data = out.read_bytes() if out.exists() else b""
        rc = hdr.returncode or body.returncode
        return NssDecoded(rc=rc, header=header, statuses=statuses,
                          nsigners=int(m.group(1)) if m else None,
                          content=data if content is None else b"",
                          stderr=hdr.stderr + body.stderr)


# ---------------------------------------------------------------------------
# MIME helpers the shared smime_util.py lacks: wrapping a CMS object made by
# another tool into a message, and comparing entities by decoded content.

CRLF = b"\r\n"


def to_crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def _header_lines(head: bytes) -> list[bytes]:
    """Header fields of a header block, each with its folding kept."""
    return [l for l in re.split(rb"\r?\n(?![ \t])", head.rstrip(b"\r\n")) if l]


def outer_headers(msg: bytes) -> list[bytes]:
    """The non-MIME header fields of MSG (From, To, Subject, ...), raw."""
    head, _ = split_message(msg)
    return [l for l in _header_lines(head)
            if not l.lower().startswith((b"content-", b"mime-version:"))]


def inner_entity(msg: bytes) -> bytes:
    """The MIME entity a signer or encrypter wraps: the Content-* fields
    and the body of MSG, converted to CRLF line ends."""
    head, body = split_message(to_crlf(msg))
    keep = [l for l in _header_lines(head) if l.lower().startswith(b"content-")]
    return CRLF.join(keep) + CRLF + CRLF + body


def wrap_b64(der: bytes) -> bytes:
    b64 = base64.b64encode(der)
    return CRLF.join(b64[i:i + 76] for i in range(0, len(b64), 76)) + CRLF


def wrap_detached(headers: list[bytes], entity: bytes, sig_der: bytes,
                  micalg: str) -> bytes:
    """A CRLF multipart/signed message: HEADERS, then ENTITY as the signed
    part, byte for byte, then SIG_DER as application/pkcs7-signature."""
    bnd = "----=_sig_" + secrets.token_hex(8)
    assert bnd.encode() not in entity
    return (b"".join(h + CRLF for h in headers) + b"MIME-Version: 1.0" + CRLF +
            (f'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
             f' micalg={micalg};' ).encode() + CRLF +
            f' boundary="{bnd}"'.encode() + CRLF + CRLF +
            b"This is an S/MIME signed message" + CRLF + CRLF +
            f"--{bnd}".encode() + CRLF + entity + CRLF +
            f"--{bnd}".encode() + CRLF +
            b'Content-Type: application/pkcs7-signature; name="smime.p7s"' + CRLF +
            b"Content-Transfer-Encoding: base64" + CRLF +
            b'Content-Disposition: attachment; filename="smime.p7s"' + CRLF + CRLF +
            wrap_b64(sig_der) + CRLF +
            f"--{bnd}--".encode() + CRLF)


def wrap_pkcs7_mime(headers: list[bytes], der: bytes, smime_type: str) -> bytes:
    """A CRLF application/pkcs7-mime message carrying DER (base64)."""
    return (b"".join(h + CRLF for h in headers) + b"MIME-Version: 1.0" + CRLF +
            (f'Content-Type: application/pkcs7-mime; smime-type={smime_type};'
             f' name="smime.p7m"').encode() + CRLF +
            b"Content-Transfer-Encoding: base64" + CRLF +
            b'Content-Disposition: attachment; filename="smime.p7m"' + CRLF + CRLF +
            wrap_b64(der))


def leaves(entity: bytes) -> list[tuple[str, bytes]]:
    """(content type, decoded payload) of every leaf part of ENTITY; text
    payloads with line ends normalized and trailing newlines dropped
    (transfer encodings and line ends may legitimately change)."""
    out = []
    for ctype, payload in leaf_parts(to_crlf(entity)):
        if ctype.startswith("text/"):
            payload = payload.replace(b"\r\n", b"\n").rstrip(b"\n")
        out.append((ctype, payload))
    return out


def assert_same_content(got: bytes, want_msg: bytes):
    """GOT (an entity or a message) carries the same content as the plain
    message WANT_MSG: same leaf types, same decoded bytes in each."""
    g, w = leaves(got), leaves(inner_entity(want_msg))
    assert [t for t, _ in g] == [t for t, _ in w], (
        f"leaf types differ: {[t for t, _ in g]} vs {[t for t, _ in w]}")
    for (t, gp), (_, wp) in zip(g, w):
        assert gp == wp, (f"{t} payload differs ({len(gp)} vs {len(wp)} bytes):"
                          f" {gp[:120]!r} vs {wp[:120]!r}")


def decoded_subject(msg: bytes) -> str | None:
    m = email.message_from_bytes(msg, policy=email.policy.default)
    s = m["Subject"]
    return None if s is None else str(s)
