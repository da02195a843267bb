#!/bin/sh
# bench/bench.sh - smimegate next to `openssl cms`: wall time and peak memory
# per message for sign, encrypt, sign+encrypt, verify and decrypt, on a
# 10 KiB and a 25 MiB message generated at run time (see bench/README.md).
#
#   make bench                    (or: sh bench/bench.sh)
#   BENCH_QUICK=1 make bench      fewer runs, for a quick look
#   SMIMEGATE_BIN=path            another smimegate binary
#   BENCH_KEEP=1                  keep the temporary directory
#
# Exit status: 0 when every run of both tools succeeded, whether or not
# the targets are met (this reports, it does not test); 1 when a command
# failed, because then the comparison means nothing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${SMIMEGATE_BIN:-$root/build/smimegate}

if [ ! -x "$bin" ]; then
	echo "bench: $bin is missing, building it" >&2
	make -C "$root" build/smimegate >&2
fi
command -v openssl >/dev/null 2>&1 || {
	echo "bench: openssl is not installed" >&2
	exit 1
}

exec /usr/bin/python3 "$here/bench.py" --bin "$bin" --root "$root"
