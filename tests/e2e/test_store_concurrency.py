"""The store is shared: the daemon and administrators' CLI commands use it
at the same time.  Real processes, one store, writers and readers at once:
nothing may fail with a lock error, nothing may be lost."""
import subprocess
from concurrent.futures import ThreadPoolExecutor

from store_util import pem_blocks


def test_parallel_writers_and_readers(store, smimegate, tmp_path):
    # 12 partner certificates, one file each.
    certs = []
    for i in range(12):
        key, crt = tmp_path / f"p{i}.key", tmp_path / f"p{i}.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", key, "-out", crt, "-days", "30",
             "-subj", f"/CN=Partner {i}",
             "-addext", f"subjectAltName=email:p{i}@partner.example",
             "-addext", "keyUsage=critical,digitalSignature,"
                        "nonRepudiation,keyEncipherment",
             "-addext", "extendedKeyUsage=emailProtection",
             "-addext", "basicConstraints=CA:FALSE"],
            check=True, capture_output=True, timeout=60)
        certs.append(crt)
    store.ok("cert", "create", "--name", "org", "--cn", "Org",
             "--san-email", "org@example.com")

    def add(i):
        return subprocess.run(
            [smimegate] + store.argv(["key", "add", f"p{i}", certs[i]]),
            capture_output=True, timeout=120)

    def read(_):
        return subprocess.run([smimegate] + store.argv(["key", "list", "--json"]),
                              capture_output=True, timeout=120)

    with ThreadPoolExecutor(max_workers=8) as pool:
        writers = [pool.submit(add, i) for i in range(12)]
        readers = [pool.submit(read, i) for i in range(12)]
        results = [f.result() for f in writers + readers]
    for r in results:
        assert r.returncode == 0, r.stderr.decode()
        assert b"Sanitizer" not in r.stderr
    names = sorted(store.names("key"))
    assert names == sorted(f"p{i}" for i in range(12)), names
    # Every certificate came through whole.
    exported = tmp_path / "all.pem"
    store.ok("key", "export", exported)
    assert len(pem_blocks(exported.read_bytes())) == 12
