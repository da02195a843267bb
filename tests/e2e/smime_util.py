"""Helpers shared by the smimegate end-to-end tests (stdlib + `openssl` only).

Import with ``from smime_util import ...`` (tests/e2e is on sys.path when
pytest runs from the repo; conftest.py also puts it there).  The names
below are a stable interface used by other test files (NSS, gpgsm): add,
do not rename.

Running programs
    run_cmd(argv, input=b"", timeout=60, env=None) -> CompletedProcess
        Runs argv (str/Path items), stdout/stderr as bytes.  Always asserts
        the process was not killed by a signal and that stderr carries no
        sanitizer report (AddressSanitizer, LeakSanitizer, UBSan
        "runtime error:").
    assert_clean(proc)                  the same checks on any result
    check_ok(proc, what="") -> bytes    asserts exit 0 and returns stdout;
                                        the assertion message shows stderr
    assert_reason(proc)                 stderr holds exactly one non-empty
                                        line (the "clear one-line reason")
    openssl(*args, input=None, check=True, timeout=60) -> CompletedProcess
    cms_print(der) -> str               `openssl cms -cmsout -print` of DER
    asn1_items(der) -> list[Asn1Item]   `openssl asn1parse` as tuples
                                        (offset, depth, hl, length, cons, tag)

Building sample messages (bytes; LF line ends unless the name says CRLF)
    make_message(headers, body, crlf=False) -> bytes
        headers: list of (name, value); body: str (UTF-8) or bytes with LF
        line ends; crlf=True converts every line end to CRLF.
    BASE_HEADERS                        From/To/Cc/Subject/Date/Message-ID
    msg_plain_lf()        text/plain us-ascii, 7bit, LF
    msg_crlf()            the same content with CRLF line ends
    msg_utf8_subject()    RFC 2047 UTF-8 Subject (UTF8_SUBJECT_DECODED)
    msg_8bit()            text/plain; charset=utf-8, CTE 8bit (EIGHTBIT_TEXT)
    msg_attachment()      multipart/mixed: text + base64 application/
                          octet-stream (ATTACHMENT_BYTES, ATTACHMENT_NAME)
    msg_long_line()       a 7bit body line of LONG_LINE_LEN (> 998) chars
    msg_nested()          multipart/mixed { multipart/alternative
                          {text/plain, text/html}, text/csv attachment }
    msg_8bit_nested()     multipart/mixed { 8bit text/plain, 8bit text/html }
    msg_no_mime()         RFC 5322 only: no MIME-Version, no Content-Type
    msg_empty_body()      text/plain with an empty body
    msg_big(size=2<<20)   multipart/mixed with a SIZE-byte base64 attachment
                          (big_attachment_bytes(size)); not in SAMPLES
    msg_routing_headers() Bcc, DKIM-Signature, Received, Reply-To present
    msg_deep_nested(depth=10000)   multipart/mixed nested DEPTH levels
    msg_long_header(size=1<<20)    one Subject header of SIZE bytes
    SAMPLES               dict name -> builder for all the normal samples
    PLAIN_TEXT            body text of msg_plain_lf()/msg_crlf()

Taking S/MIME messages apart (byte exact; LF, CRLF or mixed)
    split_message(msg) -> (header_block, body)   header block excludes the
                          blank separator line; body starts after it
    headers(msg) -> email.message.Message        top-level headers only
    get_header(msg, name) -> str | None          unfolded, first occurrence
    header_names(msg) -> list[str]               top-level field names
    content_type(msg) -> (type, params)          "multipart/signed",
                          {"micalg": "sha-256", "boundary": ..., ...}
    multipart_parts(msg) -> list[(start, end)]   byte spans of each body
                          part (the CRLF before a delimiter excluded)
    extract_signed_part(msg, canonical=False) -> bytes
        the exact bytes of the first part of a multipart/signed (what the
        signature covers, RFC 1847); canonical=True converts bare LF to CRLF
        (needed when the message travelled with LF line ends).
    extract_cms_der(msg) -> bytes
        the DER/BER of the application/pkcs7-signature part of a
        multipart/signed, or of the body of an application/pkcs7-mime
    cms_b64_span(msg) -> (start, end)            where that base64 sits
    replace_cms(msg, der) -> bytes               the message with its CMS
                                                 replaced (re-base64'd)
    parse(msg) -> email.message.Message          full parse (compat32)
    text_of(msg) -> str   decoded text of the first text/plain part,
                          line ends normalized to LF, trailing newlines
                          stripped
    leaf_parts(msg) -> list[(content_type, decoded bytes)]
    attachment_of(msg) -> bytes   decoded payload of the first
                                  application/octet-stream part
    mime_entity(msg) -> bytes     only the Content-* fields and the body
                                  (what `openssl cms -sign/-encrypt` takes)

The reference implementation (`openssl cms`; PKI names as in mkpki.sh)
    openssl_sign(pki, entity, signer="alice", md="sha256", detached=True,
                 certfile="inter.pem", from_=..., to=..., subject=...,
                 extra=()) -> bytes          whole S/MIME message
    openssl_encrypt(pki, entity, recipients=("bob",), cipher="-aes256",
                    keyopts=(), keyid=False, from_=..., to=...,
                    subject=...) -> bytes
    openssl_verify(pki, msg, check=True) -> CompletedProcess (stdout =
                    content; CAfile trust.pem, purpose smimesign)
    openssl_verify_raw(pki, der, content=None, check=True)  -binary, raw
                    CMS; detached when CONTENT is given
    openssl_decrypt(pki, msg, who="bob", cert=None, check=True)
                    -> CompletedProcess (stdout = decrypted entity)
"""

from __future__ import annotations

import base64
import email
import email.parser
import email.policy
import email.utils
import os
import re
import subprocess
import tempfile
from collections import namedtuple
from pathlib import Path

# ---------------------------------------------------------------------------
# Running programs
# ---------------------------------------------------------------------------

SANITIZER_MARKERS = (
    b"AddressSanitizer",
    b"LeakSanitizer",
    b"UndefinedBehaviorSanitizer",
    b"runtime error:",
)


def assert_clean(proc):
    """No signal death, no sanitizer report."""
    assert proc.returncode >= 0, (
        f"{_argv_str(proc.args)} killed by signal {-proc.returncode}\n"
        f"stderr: {_tail(proc.stderr)}")
    for marker in SANITIZER_MARKERS:
        assert marker not in (proc.stderr or b""), (
            f"sanitizer report from {_argv_str(proc.args)}:\n"
            f"{_tail(proc.stderr, 4000)}")
    return proc


def run_cmd(argv, input=b"", timeout=60, env=None):
    argv = [str(a) for a in argv]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout,
                          env=full_env)
    assert_clean(proc)
    return proc


def check_ok(proc, what=""):
    assert proc.returncode == 0, (
        f"{what or _argv_str(proc.args)}: exit {proc.returncode}, "
        f"expected 0\nstderr: {_tail(proc.stderr)}")
    return proc.stdout


def assert_reason(proc):
    """stderr must be one clear, non-empty line."""
    lines = [ln for ln in (proc.stderr or b"").decode(
        "utf-8", "replace").splitlines() if ln.strip()]
    assert len(lines) == 1, (
        f"expected exactly one reason line on stderr, got {len(lines)}:\n"
        + "\n".join(lines[:20]))
    return lines[0]


def openssl(*args, input=None, check=True, timeout=60):
    proc = subprocess.run(["openssl"] + [str(a) for a in args], input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, (
            f"openssl {' '.join(str(a) for a in args)}: exit "
            f"{proc.returncode}\nstderr: {_tail(proc.stderr)}")
    return proc


def cms_print(der):
    return openssl("cms", "-cmsout", "-print", "-inform", "DER",
                   input=der).stdout.decode("utf-8", "replace")


Asn1Item = namedtuple("Asn1Item", "offset depth hl length cons tag")
_ASN1_LINE = re.compile(
    r"^\s*(\d+):d=\s*(\d+)\s+hl=\s*(\d+)\s+l=\s*(\d+|inf)\s+(prim|cons):\s*"
    r"(.*?)\s*(?::.*)?$")


def asn1_items(der):
    """Parse `openssl asn1parse -inform DER` output into Asn1Item tuples.
    length is None for indefinite lengths; tag is e.g. "OCTET STRING",
    "SEQUENCE", "cont [ 0 ]"."""
    with tempfile.NamedTemporaryFile(suffix=".der") as f:
        f.write(der)
        f.flush()
        out = openssl("asn1parse", "-inform", "DER", "-in", f.name,
                      "-i").stdout.decode("utf-8", "replace")
    items = []
    for line in out.splitlines():
        m = _ASN1_LINE.match(line)
        if not m:
            continue
        length = None if m.group(4) == "inf" else int(m.group(4))
        tag = re.sub(r"\s*\[HEX DUMP\]", "", m.group(6)).strip()
        items.append(Asn1Item(int(m.group(1)), int(m.group(2)),
                              int(m.group(3)), length,
                              m.group(5) == "cons", tag))
    return items


def _argv_str(argv):
    if isinstance(argv, (list, tuple)):
        return " ".join(str(a) for a in argv)
    return str(argv)


def _tail(data, n=2000):
    if data is None:
        return ""
    text = data.decode("utf-8", "replace")
    return text if len(text) <= n else "..." + text[-n:]


# ---------------------------------------------------------------------------
# Sample messages
# ---------------------------------------------------------------------------

BASE_HEADERS = [
    ("From", "Alice <alice@example.com>"),
    ("To", "Bob <bob@example.org>"),
    ("Cc", "Dave <dave@example.net>"),
    ("Subject", "smimegate test message"),
    ("Date", "Mon, 01 Jan 2024 12:00:00 +0000"),
    ("Message-ID", "<test-0001@example.com>"),
]

PLAIN_TEXT = (
    "Hello Bob,\n"
    "\n"
    "this is a plain 7-bit test message.\n"
    "From the start of a line, a dot follows:\n"
    ".\n"
    "-- \n"
    "Alice\n")

UTF8_SUBJECT_DECODED = "Grüße – 日本語 – Ünïcödé subject"
EIGHTBIT_TEXT = (
    "Grüße aus Köln!\n"
    "Ça va? Ünïcödé ✓ – 日本語のテキスト\n"
    "Plain line.\n")
ATTACHMENT_NAME = "blob.bin"
# Deterministic binary data containing every byte value, NULs, CR, LF.
ATTACHMENT_BYTES = bytes(range(256)) * 8 + bytes(
    (i * 37 + 11) % 256 for i in range(3001))
LONG_LINE_LEN = 2500
LONG_LINE = ("0123456789abcdefghijklmnopqrstuvwxyz" * 100)[:LONG_LINE_LEN]


def make_message(headers, body, crlf=False):
    if isinstance(body, str):
        body = body.encode("utf-8")
    head = "".join(f"{n}: {v}\n" for n, v in headers).encode("utf-8")
    msg = head + b"\n" + body
    if crlf:
        msg = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return msg


def _text_headers(charset="us-ascii", cte="7bit"):
    return [("MIME-Version", "1.0"),
            ("Content-Type", f"text/plain; charset={charset}"),
            ("Content-Transfer-Encoding", cte)]


def msg_plain_lf():
    return make_message(BASE_HEADERS + _text_headers(), PLAIN_TEXT)


def msg_crlf():
    return make_message(BASE_HEADERS + _text_headers(), PLAIN_TEXT,
                        crlf=True)


def msg_utf8_subject():
    enc = base64.b64encode(UTF8_SUBJECT_DECODED.encode()).decode()
    hdrs = [(n, v) for n, v in BASE_HEADERS if n != "Subject"]
    hdrs.append(("Subject", f"=?UTF-8?B?{enc}?="))
    return make_message(hdrs + _text_headers(), PLAIN_TEXT)


def msg_8bit():
    return make_message(BASE_HEADERS + _text_headers("utf-8", "8bit"),
                        EIGHTBIT_TEXT)


def msg_attachment():
    b64 = base64.encodebytes(ATTACHMENT_BYTES).decode()  # 76-char lines
    body = (
        "This is a multi-part message in MIME format.\n"
        "--=_att_boundary_1\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "Content-Transfer-Encoding: 7bit\n"
        "\n"
        + PLAIN_TEXT +
        "\n"
        "--=_att_boundary_1\n"
        f"Content-Type: application/octet-stream; name=\"{ATTACHMENT_NAME}\"\n"
        "Content-Transfer-Encoding: base64\n"
        f"Content-Disposition: attachment; filename=\"{ATTACHMENT_NAME}\"\n"
        "\n"
        + b64 +
        "\n"
        "--=_att_boundary_1--\n")
    hdrs = BASE_HEADERS + [
        ("MIME-Version", "1.0"),
        ("Content-Type", 'multipart/mixed; boundary="=_att_boundary_1"')]
    return make_message(hdrs, body)


def msg_long_line():
    body = "Short first line.\n" + LONG_LINE + "\nLast line.\n"
    return make_message(BASE_HEADERS + _text_headers(), body)


def msg_nested():
    body = (
        "--outer_mixed\n"
        "Content-Type: multipart/alternative; boundary=\"inner_alt\"\n"
        "\n"
        "--inner_alt\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        + PLAIN_TEXT +
        "--inner_alt\n"
        "Content-Type: text/html; charset=us-ascii\n"
        "\n"
        "<html><body><p>Hello Bob,</p><p>nested test</p></body></html>\n"
        "--inner_alt--\n"
        "\n"
        "--outer_mixed\n"
        "Content-Type: text/csv; charset=us-ascii; name=\"data.csv\"\n"
        "Content-Disposition: attachment; filename=\"data.csv\"\n"
        "\n"
        "a,b,c\n1,2,3\n"
        "--outer_mixed--\n")
    hdrs = BASE_HEADERS + [
        ("MIME-Version", "1.0"),
        ("Content-Type", 'multipart/mixed; boundary="outer_mixed"')]
    return make_message(hdrs, body)


def msg_8bit_nested():
    body = (
        "--mixed8\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        + EIGHTBIT_TEXT +
        "--mixed8\n"
        "Content-Type: text/html; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "<p>Grüße, 日本語</p>\n"
        "--mixed8--\n")
    hdrs = BASE_HEADERS + [
        ("MIME-Version", "1.0"),
        ("Content-Type", 'multipart/mixed; boundary="mixed8"')]
    return make_message(hdrs, body)


def msg_no_mime():
    return make_message(BASE_HEADERS, PLAIN_TEXT)


def msg_empty_body():
    return make_message(BASE_HEADERS + _text_headers(), "")


def big_attachment_bytes(size=2 << 20):
    import hashlib
    out = bytearray()
    block = b"smimegate"
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def msg_big(size=2 << 20):
    b64 = base64.encodebytes(big_attachment_bytes(size)).decode()
    body = (
        "--big_boundary\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        + PLAIN_TEXT +
        "--big_boundary\n"
        "Content-Type: application/octet-stream; name=\"big.bin\"\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        + b64 +
        "--big_boundary--\n")
    hdrs = BASE_HEADERS + [
        ("MIME-Version", "1.0"),
        ("Content-Type", 'multipart/mixed; boundary="big_boundary"')]
    return make_message(hdrs, body)


def msg_routing_headers():
    hdrs = [
        ("Received", "from mx.example.com by gw.example.com; "
                     "Mon, 01 Jan 2024 12:00:01 +0000"),
        ("DKIM-Signature", "v=1; a=rsa-sha256; d=example.com; s=sel;\n"
                           "\th=from:to:subject; bh=AAAA; b=BBBB"),
    ] + BASE_HEADERS + [
        ("Reply-To", "Alice Replies <replies@example.com>"),
        ("Bcc", "Hidden <hidden@example.com>"),
        ("X-Custom", "kept"),
    ] + _text_headers()
    return make_message(hdrs, PLAIN_TEXT)


def msg_deep_nested(depth=10000):
    """multipart/mixed nested DEPTH levels deep (about 55 bytes a level)."""
    chunks = []
    for i in range(depth - 1):
        chunks.append(f"--b{i}\nContent-Type: multipart/mixed; "
                      f"boundary=\"b{i + 1}\"\n\n")
    chunks.append(f"--b{depth - 1}\nContent-Type: text/plain\n\ndeep\n")
    for i in reversed(range(depth)):
        chunks.append(f"--b{i}--\n")
    hdrs = BASE_HEADERS + [("MIME-Version", "1.0"),
                           ("Content-Type",
                            'multipart/mixed; boundary="b0"')]
    return make_message(hdrs, "".join(chunks))


def msg_long_header(size=1 << 20):
    hdrs = [(n, v) for n, v in BASE_HEADERS if n != "Subject"]
    hdrs.append(("Subject", "x" * size))
    return make_message(hdrs + _text_headers(), PLAIN_TEXT)


SAMPLES = {
    "plain_lf": msg_plain_lf,
    "crlf": msg_crlf,
    "utf8_subject": msg_utf8_subject,
    "8bit": msg_8bit,
    "attachment": msg_attachment,
    "long_line": msg_long_line,
    "nested": msg_nested,
    "8bit_nested": msg_8bit_nested,
    "no_mime": msg_no_mime,
    "empty_body": msg_empty_body,
}


# ---------------------------------------------------------------------------
# Taking messages apart
# ---------------------------------------------------------------------------

_BLANK = re.compile(rb"\r?\n\r?\n")


def split_message(msg):
    """(header block, body).  The header block keeps the line end of its
    last field; the blank separator line is in neither part."""
    if msg.startswith(b"\r\n"):
        return b"", msg[2:]
    if msg.startswith(b"\n"):
        return b"", msg[1:]
    m = re.search(rb"\n(\r?\n)", msg)
    if not m:
        return msg, b""
    return msg[:m.start() + 1], msg[m.end():]


def headers(msg):
    head, _ = split_message(msg)
    return email.parser.BytesHeaderParser(
        policy=email.policy.compat32).parsebytes(head + b"\n")


def get_header(msg, name):
    v = headers(msg).get(name)
    if v is None:
        return None
    return re.sub(r"\r?\n[ \t]", " ", str(v))


def header_names(msg):
    return list(headers(msg).keys())


def content_type(msg):
    h = headers(msg)
    ctype = h.get_content_type().lower()
    params = {}
    for k, v in (h.get_params() or [])[1:]:
        params[k.lower()] = email.utils.collapse_rfc2231_value(v)
    return ctype, params


def _boundary(msg):
    ctype, params = content_type(msg)
    assert ctype.startswith("multipart/"), f"not multipart: {ctype}"
    b = params.get("boundary")
    assert b, "multipart without boundary"
    return b.encode()


def _body_offset(msg):
    head, body = split_message(msg)
    return len(msg) - len(body)


def multipart_parts(msg):
    """Byte spans (absolute offsets in msg) of each body part of a
    top-level multipart.  The line end before each delimiter belongs to the
    delimiter (RFC 2046), so it is excluded from the part."""
    boundary = _boundary(msg)
    off = _body_offset(msg)
    body = msg[off:]
    pat = re.compile(rb"(?m)^--" + re.escape(boundary)
                     + rb"(--)?[ \t]*(\r?\n|$)")
    delims = []
    for m in pat.finditer(body):
        start = m.start()
        if start >= 2 and body[start - 2:start] == b"\r\n":
            pre = start - 2
        elif start >= 1:
            pre = start - 1
        else:
            pre = 0
        delims.append((pre, m.end(), bool(m.group(1))))
        if m.group(1):
            break
    assert len(delims) >= 2, "multipart boundary not found"
    spans = []
    for (_, end, closing), (nxt_pre, _, _) in zip(delims, delims[1:]):
        if closing:
            break
        spans.append((off + end, off + nxt_pre))
    return spans


def extract_signed_part(msg, canonical=False):
    ctype, params = content_type(msg)
    assert ctype == "multipart/signed", f"not multipart/signed: {ctype}"
    start, end = multipart_parts(msg)[0]
    part = msg[start:end]
    if canonical:
        part = re.sub(rb"(?<!\r)\n", b"\r\n", part)
    return part


def cms_b64_span(msg):
    """(start, end) of the base64 (or raw) CMS text inside msg."""
    ctype, params = content_type(msg)
    if ctype == "multipart/signed":
        start, end = multipart_parts(msg)[1]
        part = msg[start:end]
        ptype, _ = content_type(part)
        assert ptype in ("application/pkcs7-signature",
                         "application/x-pkcs7-signature"), ptype
        return start + _body_offset(part), end
    assert ctype in ("application/pkcs7-mime",
                     "application/x-pkcs7-mime"), f"not S/MIME: {ctype}"
    return _body_offset(msg), len(msg)


def _cte(msg):
    v = headers(msg).get("Content-Transfer-Encoding")
    return (v or "7bit").strip().lower()


def extract_cms_der(msg):
    start, end = cms_b64_span(msg)
    ctype, _ = content_type(msg)
    holder = msg
    if ctype == "multipart/signed":
        s, e = multipart_parts(msg)[1]
        holder = msg[s:e]
    data = msg[start:end]
    if _cte(holder) == "base64":
        return base64.b64decode(re.sub(rb"\s+", b"", data))
    return data


def replace_cms(msg, der):
    start, end = cms_b64_span(msg)
    nl = b"\r\n" if b"\r\n" in msg[start:end] else b"\n"
    b64 = base64.b64encode(der)
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    tail = msg[start:end]
    trailing = tail[len(tail.rstrip(b"\r\n")):]
    return msg[:start] + nl.join(lines) + (trailing or b"") + msg[end:]


def parse(msg):
    return email.parser.BytesParser(
        policy=email.policy.compat32).parsebytes(msg)


def leaf_parts(msg):
    out = []
    for part in parse(msg).walk():
        if part.is_multipart():
            continue
        out.append((part.get_content_type().lower(),
                    part.get_payload(decode=True) or b""))
    return out


def text_of(msg):
    for part in parse(msg).walk():
        if part.is_multipart():
            continue
        if part.get_content_type().lower() == "text/plain":
            raw = part.get_payload(decode=True) or b""
            cs = part.get_content_charset() or "us-ascii"
            if cs in ("us-ascii", "ascii"):
                cs = "utf-8"
            text = raw.decode(cs)
            return text.replace("\r\n", "\n").rstrip("\n")
    raise AssertionError("no text/plain part found")


def attachment_of(msg):
    for ctype, data in leaf_parts(msg):
        if ctype == "application/octet-stream":
            return data
    raise AssertionError("no application/octet-stream part found")


def mime_entity(msg):
    """The MIME entity of MSG: its Content-* header fields and its body,
    without the RFC 5322 envelope fields (what `openssl cms` takes as -in)."""
    head, body = split_message(msg)
    nl = b"\r\n" if head.endswith(b"\r\n") else b"\n"
    fields = re.split(rb"\r?\n(?![ \t])", head.rstrip(b"\r\n"))
    keep = [f for f in fields if f.lower().startswith(b"content-")]
    if not keep:
        return nl + body
    return nl.join(keep) + nl + nl + body


# ---------------------------------------------------------------------------
# The reference implementation: `openssl cms`
# ---------------------------------------------------------------------------

def openssl_sign(pki, entity, signer="alice", md="sha256", detached=True,
                 certfile="inter.pem", from_="alice@example.com",
                 to="bob@example.org", subject="signed by openssl",
                 extra=()):
    """`openssl cms -sign` ENTITY (bytes) as SIGNER; returns the whole
    S/MIME message (From/To/Subject headers added when not None)."""
    pki = Path(pki)
    args = ["cms", "-sign", "-signer", pki / f"{signer}.pem",
            "-inkey", pki / f"{signer}.key", "-md", md]
    if certfile:
        args += ["-certfile", pki / certfile]
    if not detached:
        args.append("-nodetach")
    if from_:
        args += ["-from", from_]
    if to:
        args += ["-to", to]
    if subject:
        args += ["-subject", subject]
    args += list(extra)
    return openssl(*args, input=entity).stdout


def openssl_encrypt(pki, entity, recipients=("bob",), cipher="-aes256",
                    keyopts=(), keyid=False, from_="alice@example.com",
                    to="bob@example.org", subject="encrypted by openssl"):
    """`openssl cms -encrypt` ENTITY to RECIPIENTS (names of PKI certs).
    KEYOPTS are applied to every recipient (e.g. "rsa_padding_mode:oaep").
    """
    pki = Path(pki)
    args = ["cms", "-encrypt", cipher]
    if keyid:
        args.append("-keyid")
    for r in recipients:
        args += ["-recip", pki / f"{r}.pem"]
        for k in keyopts:
            args += ["-keyopt", k]
    if from_:
        args += ["-from", from_]
    if to:
        args += ["-to", to]
    if subject:
        args += ["-subject", subject]
    return openssl(*args, input=entity).stdout


def openssl_verify(pki, msg, check=True):
    """`openssl cms -verify -CAfile trust.pem` on an S/MIME message (its own
    MIME parser, default text mode); returns the CompletedProcess, stdout
    is the signed content."""
    return openssl("cms", "-verify", "-CAfile", Path(pki) / "trust.pem",
                   "-purpose", "smimesign", input=msg, check=check)


def openssl_verify_raw(pki, der, content=None, check=True):
    """Verify raw CMS (DER/BER) with -binary: detached against the exact
    CONTENT bytes, or opaque when CONTENT is None."""
    with tempfile.TemporaryDirectory() as d:
        sig = Path(d) / "sig.der"
        sig.write_bytes(der)
        args = ["cms", "-verify", "-inform", "DER", "-in", sig, "-binary",
                "-CAfile", Path(pki) / "trust.pem", "-purpose", "smimesign"]
        if content is not None:
            c = Path(d) / "content.bin"
            c.write_bytes(content)
            args += ["-content", c]
        return openssl(*args, check=check)


def openssl_decrypt(pki, msg, who="bob", cert=None, check=True):
    """`openssl cms -decrypt` with WHO's key (cert: override the cert
    path); returns the CompletedProcess, stdout is the decrypted entity."""
    pki = Path(pki)
    return openssl("cms", "-decrypt", "-recip", cert or pki / f"{who}.pem",
                   "-inkey", pki / f"{who}.key", input=msg, check=check)
