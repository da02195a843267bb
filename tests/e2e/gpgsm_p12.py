"""gpgsm 2.2's PKCS#12 key-derivation bug, modelled so that tests can tell
it from a fault of ours.

gpgsm 2.2.40 (Debian 12) derives the key of a password-based PKCS#12
cipher with its own copy of the RFC 7292 appendix B KDF (sm/minip12.c,
string_to_key).  When the key is longer than one SHA-1 output (the 24
bytes of 3DES), the KDF adds B + 1 to each 64-byte block I_j and writes the
sum back with gcry_mpi_print(GCRYMPI_FMT_USG, I_j, 64, ...).  That call
writes the minimal number of bytes: when the sum's top byte is zero (about
1 salt in 128 for a short password), the block is shifted left and its
last byte is left stale, so gpgsm derives a wrong 3DES key, and the import
fails ("decryption failed; trying charset ..." then "encryptedData error"
or "data error at shrouded_key_bag.decrypted-text").  OpenSSL's own
`openssl pkcs12 -export -legacy` files are refused at the same rate; the
40-bit RC2 bags (5-byte key) and the MAC (20 bytes) are not affected.

    gpgsm22_refuses(p12_der, password) -> bool
        True when some 3DES bag of the file gets a different key from
        gpgsm 2.2 than from RFC 7292: gpgsm will refuse this file, whatever
        wrote it.  A test then writes the file again (new random salts)
        rather than skipping gpgsm.
"""

from __future__ import annotations

import hashlib

OID_PBE_SHA1_3DES = bytes.fromhex("2a864886f70d010c0103")  # 1.2.840.113549.1.12.1.3


def _tlv(buf: bytes, pos: int):
    """(tag, constructed, content start, content end) of the DER TLV at POS,
    or None when it does not parse inside BUF."""
    if pos + 2 > len(buf):
        return None
    tag = buf[pos]
    if tag & 0x1F == 0x1F:          # high tag numbers: not in PKCS#12
        return None
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > len(buf):
            return None
        n = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    if pos + n > len(buf):
        return None
    return tag, bool(tag & 0x20), pos, pos + n


def _children(buf: bytes, start: int, end: int):
    """The TLVs between START and END, or None unless they fill it exactly."""
    out = []
    while start < end:
        t = _tlv(buf[:end], start)
        if t is None:
            return None
        out.append(t)
        start = t[3]
    return out


def _pbe_params(buf: bytes, start: int, end: int, found: list, depth: int = 0):
    """Collect (salt, iterations) of every 3DES PBE AlgorithmIdentifier
    below BUF[START:END], descending into constructed values and into
    OCTET STRINGs that hold DER (PKCS#12 nests its SafeContents so)."""
    kids = _children(buf, start, end)
    if kids is None or depth > 32:
        return
    for tag, cons, s, e in kids:
        if tag == 0x30:
            sub = _children(buf, s, e)
            if (sub and len(sub) == 2 and sub[0][0] == 0x06 and
                    buf[sub[0][2]:sub[0][3]] == OID_PBE_SHA1_3DES and
                    sub[1][0] == 0x30):
                p = _children(buf, sub[1][2], sub[1][3])
                if p and len(p) == 2 and p[0][0] == 0x04 and p[1][0] == 0x02:
                    found.append((buf[p[0][2]:p[0][3]],
                                  int.from_bytes(buf[p[1][2]:p[1][3]], "big")))
                    continue
        if cons:
            _pbe_params(buf, s, e, found, depth + 1)
        elif tag == 0x04:
            _pbe_params(buf, s, e, found, depth + 1)


def _kdf(salt: bytes, iters: int, password: str, n: int, gpgsm22: bool) -> bytes:
    """RFC 7292 B.2 with SHA-1 and ID 1 (key material), for a password of at
    most 31 characters (gpgsm's limit); GPGSM22 reproduces minip12's
    unpadded write-back."""
    pw = password.encode("utf-16-be") + b"\0\0"
    i_buf = bytearray((salt * 64)[:64] + (pw * 64)[:64])
    out = b""
    while True:
        a = hashlib.sha1(b"\x01" * 64 + bytes(i_buf)).digest()
        for _ in range(1, iters):
            a = hashlib.sha1(a).digest()
        out += a
        if len(out) >= n:
            return out[:n]
        b1 = int.from_bytes((a * 4)[:64], "big") + 1
        for j in (0, 64):
            v = (int.from_bytes(i_buf[j:j + 64], "big") + b1) % (1 << 512)
            if gpgsm22:
                raw = v.to_bytes((v.bit_length() + 7) // 8, "big")
                i_buf[j:j + len(raw)] = raw
            else:
                i_buf[j:j + 64] = v.to_bytes(64, "big")


def gpgsm22_refuses(p12_der: bytes, password: str) -> bool:
    found: list = []
    _pbe_params(p12_der, 0, len(p12_der), found)
    assert found, "no 3DES PBE in this PKCS#12: not a legacy file"
    return any(_kdf(s, it, password, 24, True) != _kdf(s, it, password, 24, False)
               for s, it in found)
