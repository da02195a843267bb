"""pytest fixtures for the smimegate end-to-end tests.

Fixtures
    smimegate   path (str) of the binary under test: $SMIMEGATE_BIN, else
                <repo>/build/test/smimegate.  A missing binary is an error,
                never a skip.
    pki         session-scoped pathlib.Path of a fresh test PKI made by
                tests/pki/mkpki.sh (see that script for the file list).
    run         run(args, input=b"", timeout=60, env=None) ->
                CompletedProcess: runs smimegate with ARGS (str/Path items)
                and always checks it was not killed by a signal and printed
                no sanitizer report.
    smime       a Smime helper bound to `run` and `pki` with the common
                operations (sign/encrypt/verify/decrypt that must succeed).
    store, bare_store   a store_util.Store in tmp_path (initialized, or not)
    shim        shim(NAME) -> environment (dict) that preloads the test shim
                tests/e2e/shim/NAME.c, built once per session, into the
                binary under test (ASan's link-order check off for it).
    gateway     make(**kw) -> gateway_util.Gateway: real daemons, each with
                an organization certificate "org", killed by PID at the end
                and their logs checked for sanitizer reports.

Message builders and MIME/CMS helpers are plain functions in smime_util.py.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from smime_util import check_ok, run_cmd  # noqa: E402


@pytest.fixture(scope="session")
def smimegate():
    path = os.environ.get("SMIMEGATE_BIN") or str(
        REPO / "build" / "test" / "smimegate")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"smimegate binary not found or not executable: {path} "
                    "(build it with `make test-build`, or set SMIMEGATE_BIN)",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    """LD_PRELOAD shims that make one system call fail the way it does on
    other machines or for other users.  ASan wants its runtime first among
    the libraries; the shim comes first, so that check is turned off."""
    built = {}

    def _shim(name):
        if name not in built:
            so = tmp_path_factory.mktemp("shim") / f"{name}.so"
            src = HERE / "shim" / f"{name}.c"
            r = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall",
                                "-Wextra", "-Werror", "-o", str(so),
                                str(src), "-ldl"],
                               capture_output=True, timeout=120)
            assert r.returncode == 0, r.stderr.decode()
            built[name] = str(so)
        return {"LD_PRELOAD": built[name],
                "ASAN_OPTIONS": "verify_asan_link_order=0"}
    return _shim


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    proc = subprocess.run(["sh", str(REPO / "tests" / "pki" / "mkpki.sh"),
                           str(d)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)
    if proc.returncode != 0:
        pytest.fail("mkpki.sh failed:\n"
                    + proc.stderr.decode("utf-8", "replace"), pytrace=False)
    return d


@pytest.fixture
def run(smimegate):
    def _run(args, input=b"", timeout=60, env=None):
        return run_cmd([smimegate] + list(args), input=input,
                       timeout=timeout, env=env)
    return _run


class Smime:
    """Common smimegate operations that are expected to succeed; each
    returns the output message (bytes)."""

    def __init__(self, run, pki):
        self.run = run
        self.pki = pki

    def sign(self, msg, signer="alice", chain=True, digest=None,
             opaque=False, extra=()):
        p = self.pki
        args = ["sign", "--signer", p / f"{signer}.pem",
                "--key", p / f"{signer}.key"]
        if chain:
            args += ["--certfile", p / "inter.pem"]
        if digest:
            args += ["--digest", digest]
        if opaque:
            args.append("--opaque")
        args += list(extra)
        return check_ok(self.run(args, input=msg), "smimegate sign")

    def encrypt(self, msg, recipients=("bob",), cipher=None, oaep=False):
        args = ["encrypt"]
        for r in recipients:
            args += ["--recipient", self.pki / f"{r}.pem"]
        if cipher:
            args += ["--cipher", cipher]
        if oaep:
            args.append("--oaep")
        return check_ok(self.run(args, input=msg), "smimegate encrypt")

    def verify(self, msg, extra=()):
        return check_ok(self.run(["verify", "--trust",
                                  self.pki / "trust.pem"] + list(extra),
                                 input=msg), "smimegate verify")

    def decrypt(self, msg, who="bob", cert=None):
        p = self.pki
        return check_ok(self.run(["decrypt", "--cert",
                                  cert or p / f"{who}.pem",
                                  "--key", p / f"{who}.key"], input=msg),
                        "smimegate decrypt")


@pytest.fixture
def smime(run, pki):
    return Smime(run, pki)


@pytest.fixture
def gateway(smimegate, tmp_path):
    from gateway_util import gateways
    yield from gateways(smimegate, tmp_path)


# The key store's fixtures live with their helpers in store_util.py.
from store_util import bare_store, store  # noqa: E402,F401
