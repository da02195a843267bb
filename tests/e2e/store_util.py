"""Helpers for the key store / certificate management CLI tests
(test_store_*.py).

Every test gets its own store under tmp_path; every command is run with
--store (inserted right after the command words: `cert create --store P
...`).

    Store(run, root)        a store at ROOT/sg.db, master key ROOT/sg.db.key
      .cmd(*args, input=b"", keyfile=None)  -> CompletedProcess
      .ok(*args, ...)       -> stdout (asserts exit 0)
      .fail(*args, code=1, status=None, ...) -> the reason line; asserts the
                               exit code and that stderr is exactly one line
                               `smimegate: CMD: status-name: reason`
      .json(*args)          -> parsed stdout of a --json command
      .init()               `store init`
      .db_bytes()           bytes of the database and its -wal/-shm/-journal
    store (fixture)         an initialized Store in tmp_path
    bare_store (fixture)    a Store whose files do not exist yet

    pem_blocks(data, label="CERTIFICATE") -> list[bytes] (DER)
    x509_text(pem_or_path) -> str           `openssl x509 -text -noout`
    x509_field(path, opt)  -> str           one `openssl x509 -noout -OPT`
    export_identity(store, name, d, legacy=False)
        -> Identity(cert, chain, key, p12, passfile, certs_der)
        cert export --pem (split into leaf and chain files), cert export
        --p12, and the private key taken out of the p12 with
        `openssl pkcs12 -nocerts -nodes`: files usable with the one-shot
        `smimegate sign --signer CERT --key KEY --certfile CHAIN`.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from nss_util import der_to_pem
from smime_util import openssl

PASSPHRASE = "store-test pass phrase"

STATUS_LINE = re.compile(
    r"^smimegate: (?P<cmd>[^:]+): (?P<status>[a-z][a-z0-9-]*): "
    r"(?P<reason>\S.*)$")

COMMAND_WORDS = {"store", "cert", "key", "ca"}


class Store:
    def __init__(self, run, root: Path, name: str = "sg.db"):
        self.run = run
        self.dir = Path(root)
        self.path = self.dir / name
        self.keyfile = Path(str(self.path) + ".key")

    # -- running ------------------------------------------------------------

    def argv(self, args, keyfile=None):
        args = [str(a) for a in args]
        n = 2 if args and args[0] in COMMAND_WORDS else 1
        extra = ["--store", str(self.path)]
        if keyfile is not None:
            extra += ["--keyfile", str(keyfile)]
        return args[:n] + extra + args[n:]

    def cmd(self, *args, input=b"", keyfile=None):
        return self.run(self.argv(args, keyfile), input=input)

    def ok(self, *args, input=b"", keyfile=None) -> bytes:
        proc = self.cmd(*args, input=input, keyfile=keyfile)
        assert proc.returncode == 0, (
            f"smimegate {' '.join(self.argv(args, keyfile))}: exit "
            f"{proc.returncode}, expected 0\nstderr: "
            f"{proc.stderr.decode('utf-8', 'replace')[-2000:]}")
        return proc.stdout

    def fail(self, *args, code=1, status=None, input=b"",
             keyfile=None) -> str:
        """Runs a command that must fail with exit CODE and one reason line
        `smimegate: CMD: STATUS: reason`; returns that line."""
        proc = self.cmd(*args, input=input, keyfile=keyfile)
        err = proc.stderr.decode("utf-8", "replace")
        what = f"smimegate {' '.join(self.argv(args, keyfile))}"
        assert proc.returncode == code, (
            f"{what}: exit {proc.returncode}, expected {code}\n"
            f"stdout: {proc.stdout[:500]!r}\nstderr: {err[-2000:]}")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, (
            f"{what}: expected exactly one reason line on stderr, got "
            f"{len(lines)}:\n{err[-2000:]}")
        m = STATUS_LINE.match(lines[0])
        assert m, (f"{what}: reason line not in the form "
                   f"'smimegate: CMD: status-name: reason': {lines[0]!r}")
        if status is not None:
            assert m.group("status") == status, (
                f"{what}: status {m.group('status')!r}, expected "
                f"{status!r}: {lines[0]!r}")
        assert b"PRIVATE KEY" not in proc.stdout + proc.stderr
        return lines[0]

    def json(self, *args, keyfile=None):
        out = self.ok(*args, keyfile=keyfile)
        try:
            return json.loads(out.decode("utf-8"))
        except ValueError as e:
            raise AssertionError(
                f"smimegate {' '.join(self.argv(args))} printed no JSON "
                f"({e}): {out[:500]!r}")

    def init(self, keyfile=None):
        return self.ok("store", "init", keyfile=keyfile)

    # -- listings -------------------------------------------------------------

    def entries(self, kind: str) -> list[dict]:
        v = self.json(kind, "list", "--json")
        assert isinstance(v, list), f"{kind} list --json: not an array: {v!r}"
        return v

    def names(self, kind: str) -> list[str]:
        return sorted(e["name"] for e in self.entries(kind))

    def show(self, kind: str, name: str) -> dict:
        v = self.json(kind, "show", name, "--json")
        assert isinstance(v, dict), f"{kind} show --json: not an object: {v!r}"
        return v

    # -- files ------------------------------------------------------------------

    def db_files(self) -> list[Path]:
        return [self.dir / (self.path.name + sfx)
                for sfx in ("", "-wal", "-shm", "-journal")
                if (self.dir / (self.path.name + sfx)).exists()]

    def db_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.db_files())


@pytest.fixture
def bare_store(run, tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    return Store(run, d)


@pytest.fixture
def store(bare_store):
    bare_store.init()
    return bare_store


# ---------------------------------------------------------------------------
# PEM and certificate facts


def pem_blocks(data: bytes, label: str = "CERTIFICATE") -> list[bytes]:
    pat = re.compile(rb"-----BEGIN " + label.encode() + rb"-----(.+?)-----END "
                     + label.encode() + rb"-----", re.S)
    return [base64.b64decode(b"".join(m.group(1).split()))
            for m in pat.finditer(data)]


def x509_text(pem) -> str:
    if isinstance(pem, (bytes, bytearray)):
        return openssl("x509", "-text", "-noout",
                       input=bytes(pem)).stdout.decode()
    return openssl("x509", "-text", "-noout", "-in", pem).stdout.decode()


def x509_field(path, *opts) -> str:
    """`openssl x509 -noout OPTS` with RFC 2253 names and ISO dates; the
    value after the first '='."""
    out = openssl("x509", "-noout", "-in", path, "-nameopt", "RFC2253",
                  "-dateopt", "iso_8601", *opts).stdout.decode().strip()
    return out.split("=", 1)[1] if "=" in out else out


def subject_fields(text: str) -> dict:
    """{'CN': ..., 'O': ...} from the Subject: line of `x509 -text`."""
    m = re.search(r"^\s*Subject: (.*)$", text, re.M)
    assert m, "no Subject line"
    out = {}
    for part in re.split(r", (?=[A-Za-z]+ = )", m.group(1)):
        k, _, v = part.partition(" = ")
        out[k.strip()] = v.strip()
    return out


def extension_value(text: str, name: str) -> str | None:
    """The value line(s) of X509v3 extension NAME in `x509 -text`."""
    m = re.search(r"^([ \t]*)X509v3 " + re.escape(name) +
                  r":( critical)?[ \t]*\n((?:\1[ \t]+.*\n)+)", text, re.M)
    return None if m is None else " ".join(
        ln.strip() for ln in m.group(3).splitlines())


def extension_critical(text: str, name: str) -> bool:
    return re.search(r"X509v3 " + re.escape(name) + r": critical", text) \
        is not None


# ---------------------------------------------------------------------------
# Getting an identity out of the store, as files for the one-shot commands


@dataclass
class Identity:
    cert: Path          # the certificate (PEM)
    chain: Path | None  # the rest of `cert export --pem` (PEM), or None
    key: Path           # the private key from the p12 (PEM, PKCS#8)
    p12: Path
    passfile: Path
    certs_der: list     # every certificate of `cert export --pem`, as DER


def write_passfile(d: Path, passphrase: str = PASSPHRASE) -> Path:
    p = Path(d) / "pass.txt"
    p.write_text(passphrase)
    return p


def export_identity(store: Store, name: str, d: Path,
                    legacy: bool = False) -> Identity:
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    pem = store.ok("cert", "export", name, "--pem")
    assert b"PRIVATE KEY" not in pem, "cert export --pem printed a private key"
    ders = pem_blocks(pem)
    assert ders, f"cert export {name} --pem printed no certificate: {pem[:300]!r}"
    cert = d / f"{name}.pem"
    cert.write_bytes(der_to_pem(ders[0]))
    chain = None
    if len(ders) > 1:
        chain = d / f"{name}-chain.pem"
        chain.write_bytes(b"".join(der_to_pem(x) for x in ders[1:]))
    passfile = write_passfile(d)
    p12 = d / f"{name}{'-legacy' if legacy else ''}.p12"
    args = ["cert", "export", name, "--p12", p12, "--pass-file", passfile]
    if legacy:
        args.append("--legacy")
    store.ok(*args)
    assert p12.is_file() and p12.stat().st_size > 0, "no PKCS#12 written"
    key = d / f"{name}.key"
    extra = ("-legacy",) if legacy else ()
    keypem = openssl("pkcs12", "-in", p12, "-nocerts", "-nodes", "-passin",
                     f"file:{passfile}", *extra).stdout
    assert b"PRIVATE KEY" in keypem, "the PKCS#12 holds no private key"
    key.write_bytes(openssl("pkey", input=keypem).stdout)
    key.chmod(0o600)
    return Identity(cert, chain, key, p12, passfile, ders)
