#!/bin/sh
# bench/gateway.sh - the gateway end to end: messages per second and
# latency through the real daemon (smtp-source -> smimegate -> smtp-sink),
# sign and sign+encrypt of a 10 KiB message at 1, 8 and 32 concurrent
# clients, next to the RSA-2048 signing ceiling (`openssl speed`), a
# pipe-style `openssl cms -sign` per message and a real Postfix with that
# as its pipe(8) content filter (bench/postfix_pipe.py, needs root and
# msmtp); and the spool's commits per second alone (see bench/README.md,
# "Gateway throughput").
#
#   make bench-gateway            (or: sh bench/gateway.sh), about 2 min
#   BENCH_QUICK=1 ...             shorter runs, one round, about 25 s
#   SMIMEGATE_BIN=path            another smimegate binary
#   BENCH_DIR=dir                 where the spools go (default: build/;
#                                 not a tmpfs, or fsync costs nothing)
#   BENCH_KEEP=1                  keep the temporary directory
#
# Exit status: 0 when everything ran, whether or not the targets are met
# (this reports, it does not test); 1 when something failed to run or a
# message did not arrive as it should, because then the figures mean
# nothing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${SMIMEGATE_BIN:-$root/build/smimegate}

if [ ! -x "$bin" ]; then
	echo "bench: $bin is missing, building it" >&2
	make -C "$root" build/smimegate >&2
fi
for tool in openssl cc pkg-config; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "bench: $tool is not installed" >&2
		exit 1
	}
done

exec /usr/bin/python3 "$here/gateway.py" --bin "$bin" --root "$root"
