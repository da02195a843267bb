#!/bin/sh
# mkpki.sh DIR - generate a throw-away S/MIME test PKI into DIR.
#
# Nothing here is committed: the e2e tests run this at session start.
# Only `openssl` is used.  The layout (file names, subjects, extensions,
# validity dates) is fixed; the keys are fresh random keys on every run.
#
#   root.pem/.key      Root CA (CA:TRUE), 2020-01-01 .. 2049-12-31
#   inter.pem/.key     Intermediate CA signed by root
#   trust.pem          = root.pem (the only trust anchor)
#   alice.pem/.key     RSA-2048, CN=Alice, SAN alice@example.com
#   alice-chain.pem    = inter.pem
#   alice-full.pem     = alice.pem + inter.pem
#   alice.p12          PKCS#12 (OpenSSL 3 default: AES-256, PBKDF2), with inter
#   alice-legacy.p12   PKCS#12 -legacy (3DES, SHA-1 MAC), with inter
#   pass.txt           the PKCS#12 password, no newline
#   bob.pem/.key       RSA-2048, CN=Bob, SAN bob@example.org (2023-01-01 ..)
#   bob-third.pem      a third one (notBefore 2025-01-01), for harvesting
#   bob-renewed.pem    a second certificate for bob.key: new serial,
#                      notBefore 2024-06-01 (same subject key identifier)
#   dave.pem/.key      RSA-2048, CN=Dave, SAN dave@example.net
#   carol-ec.pem/.key  EC P-256, SAN carol@example.com,
#                      keyUsage digitalSignature,keyAgreement
#   expired.pem/.key   RSA, SAN expired@example.com, 2020-01-01 .. 2021-01-01
#   noeku.pem/.key     RSA, SAN noeku@example.com, EKU serverAuth only
#   nokeyenc.pem/.key  RSA, SAN nokeyenc@example.com, keyUsage
#                      digitalSignature only, EKU emailProtection
#   rogue-root.pem/.key  a second, untrusted root
#   rogue.pem/.key     RSA, SAN rogue@example.com, issued by rogue-root
#   <name>-full.pem    leaf + its intermediate, for every inter-issued leaf
#
# Every end-entity profile (unless stated): keyUsage critical
# digitalSignature,nonRepudiation,keyEncipherment; extendedKeyUsage
# emailProtection; subjectKeyIdentifier; authorityKeyIdentifier; no
# emailAddress in the subject.  Keys are unencrypted PKCS#8 PEM, mode 0600.
# CA bookkeeping goes to DIR/ca/.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
D=$1
mkdir -p "$D"
D=$(cd "$D" && pwd)
umask 077
mkdir -p "$D/ca"
PASS="smimegate-test-pass"

# ---- configuration -------------------------------------------------------
cat >"$D/ca/ca.cnf" <<'EOF'
[ ca ]
default_ca = CA_default

[ CA_default ]
dir              = $ENV::SG_CADIR
database         = $dir/index.txt
new_certs_dir    = $dir/new
serial           = $dir/serial
default_md       = sha256
policy           = policy_any
unique_subject   = no
copy_extensions  = none
email_in_dn      = no
preserve         = yes
name_opt         = ca_default
cert_opt         = ca_default

[ policy_any ]
countryName            = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied
EOF

cat >"$D/ca/req.cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = placeholder
EOF

cat >"$D/ca/ext.cnf" <<'EOF'
[ v3_root ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

[ v3_inter ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ v3_smime ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, nonRepudiation, keyEncipherment
extendedKeyUsage       = emailProtection
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = email:$ENV::SG_EMAIL

[ v3_ec ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, keyAgreement
extendedKeyUsage       = emailProtection
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = email:$ENV::SG_EMAIL

[ v3_noeku ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, nonRepudiation, keyEncipherment
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = email:$ENV::SG_EMAIL

[ v3_nokeyenc ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = emailProtection
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = email:$ENV::SG_EMAIL
EOF

# ---- keys (in parallel: RSA generation dominates the run time) -----------
rsakey() {
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out "$D/$1.key" 2>/dev/null
}
pids=""
for k in root inter alice bob dave expired noeku nokeyenc rogue-root rogue; do
	rsakey "$k" &
	pids="$pids $!"
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$D/carol-ec.key" 2>/dev/null &
pids="$pids $!"
for p in $pids; do wait "$p"; done

# ---- helpers ---------------------------------------------------------------
# newca NAME SERIAL_HEX : an `openssl ca` state directory
newca() {
	mkdir -p "$D/ca/$1/new"
	: >"$D/ca/$1/index.txt"
	echo "$2" >"$D/ca/$1/serial"
}

# issue CA KEY OUT SUBJECT EXTSECTION START END [EMAIL]
#   CA: state dir name; its cert/key are $D/<CA>.pem/.key, or "self"
issue() {
	ca=$1 key=$2 out=$3 subj=$4 ext=$5 start=$6 end=$7 email=${8:-none}
	openssl req -new -config "$D/ca/req.cnf" -key "$D/$key.key" \
		-out "$D/ca/$out.csr" 2>"$D/ca/$out.log" ||
		{ cat "$D/ca/$out.log" >&2; exit 1; }
	if [ "$ca" = self ]; then
		SG_CADIR="$D/ca/$key" SG_EMAIL=$email openssl ca -batch -notext \
			-config "$D/ca/ca.cnf" -selfsign -keyfile "$D/$key.key" \
			-in "$D/ca/$out.csr" -out "$D/$out.pem" -subj "$subj" \
			-extfile "$D/ca/ext.cnf" -extensions "$ext" \
			-startdate "$start" -enddate "$end" 2>"$D/ca/$out.log"
	else
		SG_CADIR="$D/ca/$ca" SG_EMAIL=$email openssl ca -batch -notext \
			-config "$D/ca/ca.cnf" -cert "$D/$ca.pem" -keyfile "$D/$ca.key" \
			-in "$D/ca/$out.csr" -out "$D/$out.pem" -subj "$subj" \
			-extfile "$D/ca/ext.cnf" -extensions "$ext" \
			-startdate "$start" -enddate "$end" 2>"$D/ca/$out.log"
	fi || { cat "$D/ca/$out.log" >&2; exit 1; }
}

CA_START=20200101000000Z
CA_END=20491231235959Z
EE_START=20230101000000Z
EE_END=20451231235959Z
O="/O=smimegate test"

# ---- the trusted hierarchy ---------------------------------------------------
newca root 1000
newca inter 2000
issue self root root "$O/CN=smimegate Test Root CA" v3_root $CA_START $CA_END
issue root inter inter "$O/CN=smimegate Test Intermediate CA" v3_inter $CA_START $CA_END

issue inter alice alice "$O/CN=Alice" v3_smime $EE_START $EE_END alice@example.com
issue inter bob bob "$O/CN=Bob" v3_smime $EE_START $EE_END bob@example.org
issue inter bob bob-renewed "$O/CN=Bob" v3_smime 20240601000000Z $EE_END bob@example.org
issue inter bob bob-third "$O/CN=Bob" v3_smime 20250101000000Z $EE_END bob@example.org
issue inter dave dave "$O/CN=Dave" v3_smime $EE_START $EE_END dave@example.net
issue inter carol-ec carol-ec "$O/CN=Carol" v3_ec $EE_START $EE_END carol@example.com
issue inter expired expired "$O/CN=Expired" v3_smime 20200101000000Z 20210101000000Z expired@example.com
issue inter noeku noeku "$O/CN=No EKU" v3_noeku $EE_START $EE_END noeku@example.com
issue inter nokeyenc nokeyenc "$O/CN=No KeyEnc" v3_nokeyenc $EE_START $EE_END nokeyenc@example.com

# ---- the untrusted hierarchy -------------------------------------------------
newca rogue-root 3000
issue self rogue-root rogue-root "/O=rogue/CN=Rogue Root CA" v3_root $CA_START $CA_END
issue rogue-root rogue rogue "/O=rogue/CN=Alice" v3_smime $EE_START $EE_END rogue@example.com

# ---- bundles -----------------------------------------------------------------
cp "$D/root.pem" "$D/trust.pem"
cp "$D/inter.pem" "$D/alice-chain.pem"
for n in alice bob bob-renewed dave carol-ec expired noeku nokeyenc; do
	cat "$D/$n.pem" "$D/inter.pem" >"$D/$n-full.pem"
done
cat "$D/rogue.pem" "$D/rogue-root.pem" >"$D/rogue-full.pem"

printf '%s' "$PASS" >"$D/pass.txt"
openssl pkcs12 -export -in "$D/alice.pem" -inkey "$D/alice.key" \
	-certfile "$D/inter.pem" -name alice -passout "file:$D/pass.txt" \
	-out "$D/alice.p12"
openssl pkcs12 -export -legacy -in "$D/alice.pem" -inkey "$D/alice.key" \
	-certfile "$D/inter.pem" -name alice -passout "file:$D/pass.txt" \
	-out "$D/alice-legacy.p12"

chmod 0600 "$D"/*.key "$D"/*.p12 "$D/pass.txt"
chmod 0644 "$D"/*.pem
rm -f "$D"/ca/*.csr
