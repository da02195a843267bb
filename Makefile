# smimegate - build, run and test.
#   make            release binary: build/smimegate
#   make run        the demo on the embedded default (throw-away certificates)
#   make test       unit + end-to-end tests, all under ASan and UBSan
#   make bench      speed and memory next to `openssl cms` (bench/bench.sh)
#   make bench-gateway  messages/s through the daemon (bench/gateway.sh)
#   make install    the binary, the systemd unit and the docs under PREFIX
#   make format     clang-format the C sources

CC      ?= cc
PKGS     = gmime-3.0 openssl sqlite3 libevent_core libevent_extra \
           libevent_pthreads libevent_openssl libxcrypt
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) ldap)
# Linked: OpenSSL's libcrypto (and the C library).  libssl, GMime, SQLite,
# libevent, libxcrypt, libresolv and libldap are opened on first use (src/lib/dl.h says why), by
# the sonames this machine's -dev packages have (none before
# scripts/deps.sh ran: the *_dl.c files then stop with #error).
PKG_LIBS   := $(shell pkg-config --libs libcrypto)
soname = $(shell objdump -p $$(pkg-config --variable=libdir $(1))/$(2) \
           2>/dev/null | awk '$$1 == "SONAME" { print $$2 }')
sodef  = $(foreach s,$(call soname,$(2),$(3)),-DSG_$(1)_SONAME='"$(s)"')
SONAMES := $(call sodef,GMIME,gmime-3.0,libgmime-3.0.so) \
           $(call sodef,SQLITE,sqlite3,libsqlite3.so) \
           $(call sodef,EVENT_CORE,libevent_core,libevent_core.so) \
           $(call sodef,EVENT_EXTRA,libevent_extra,libevent_extra.so) \
           $(call sodef,EVENT_OPENSSL,libevent_openssl,libevent_openssl.so) \
           $(call sodef,EVENT_PTHREADS,libevent_pthreads,libevent_pthreads.so) \
           $(call sodef,SSL,libssl,libssl.so) \
           $(call sodef,CRYPT,libxcrypt,libcrypt.so) \
           $(call sodef,LDAP,ldap,libldap.so)

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-unused-parameter
BASE     = -std=c17 -D_GNU_SOURCE -Iinclude -Isrc $(PKG_CFLAGS) $(SONAMES)
CFLAGS_REL  = $(BASE) $(WARN) -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
CFLAGS_TEST = $(BASE) $(WARN) -O1 -g -fno-omit-frame-pointer \
              -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS_TEST = -fsanitize=address,undefined

LIB_SRC  = $(sort $(wildcard src/lib/*.c))
STORE_SRC = $(sort $(wildcard src/store/*.c))
POLICY_SRC = $(sort $(wildcard src/policy/*.c))
DAEMON_SRC = $(sort $(wildcard src/daemon/*.c))
CORE_SRC = $(LIB_SRC) $(STORE_SRC) $(POLICY_SRC) $(DAEMON_SRC)
CLI_SRC  = $(sort $(wildcard src/cli/*.c))
UNIT_SRC = $(sort $(wildcard tests/unit/*.c))

REL_OBJ  = $(patsubst %.c,build/rel/%.o,$(CORE_SRC) $(CLI_SRC))
TEST_LIB_OBJ = $(patsubst %.c,build/test/%.o,$(CORE_SRC))
TEST_CLI_OBJ = $(patsubst %.c,build/test/%.o,$(CLI_SRC))
UNIT_OBJ = $(patsubst %.c,build/test/%.o,$(UNIT_SRC))
HDRS     = $(wildcard include/*.h src/*/*.h tests/unit/*.h)

PYTEST  ?= /usr/bin/python3 -m pytest

.PHONY: all run test test-build unit e2e bench bench-gateway fuzz format format-check deps clean install

all: build/smimegate

build/rel/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) -c $< -o $@

build/test/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) -c $< -o $@

build/smimegate: $(REL_OBJ)
	$(CC) -o $@ $^ $(PKG_LIBS)

build/test/smimegate: $(TEST_LIB_OBJ) $(TEST_CLI_OBJ)
	$(CC) $(LDFLAGS_TEST) -o $@ $^ $(PKG_LIBS)

build/test/unit_tests: $(TEST_LIB_OBJ) $(UNIT_OBJ)
	$(CC) $(LDFLAGS_TEST) -o $@ $^ $(PKG_LIBS)

deps:
	sh scripts/deps.sh

# `make run` and `make test` work on a fresh Debian 12 machine: they
# install what is missing first (scripts/deps.sh is idempotent and fast).
run: deps
	$(MAKE) build/smimegate
	build/smimegate serve --demo var

test-build: build/test/smimegate build/test/unit_tests

unit: build/test/unit_tests
	build/test/unit_tests

e2e: build/test/smimegate
	SMIMEGATE_BIN=$(CURDIR)/build/test/smimegate $(PYTEST) -q tests/e2e

# Both suites run even when the first fails; the target fails if either did.
test: deps
	$(MAKE) test-build
	@rc=0; build/test/unit_tests || rc=1; \
	SMIMEGATE_BIN=$(CURDIR)/build/test/smimegate $(PYTEST) -q tests/e2e || rc=1; \
	exit $$rc

# Coverage-guided fuzzing of every parser (clang + libFuzzer); not part of
# `make test`.  Seeds come from the test suite's messages when present.
# fuzz_daemon takes the daemon's parsers of client and next-hop input
# (SMTP syntax, AUTH PLAIN, replies, dot-stuffing, kvtext, filters) with
# the files they need; each target runs FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS = $(BASE) $(WARN) -g -O1 -fsanitize=fuzzer,address,undefined
FUZZ_DAEMON_SRC = $(LIB_SRC) $(POLICY_SRC) \
	$(addprefix src/daemon/,daemon_dl.c kvtext.c log.c mx.c reason.c relay.c \
	  smtp_auth.c smtp_parse.c)
build/fuzz/fuzz_message: tests/fuzz/fuzz_message.c $(LIB_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_message.c $(LIB_SRC) $(PKG_LIBS)

build/fuzz/fuzz_daemon: tests/fuzz/fuzz_daemon.c $(FUZZ_DAEMON_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_daemon.c $(FUZZ_DAEMON_SRC) \
		$(PKG_LIBS)

fuzz: build/fuzz/fuzz_message build/fuzz/fuzz_daemon
	@mkdir -p build/fuzz/corpus build/fuzz/corpus_daemon
	build/fuzz/fuzz_message -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-timeout=10 -artifact_prefix=build/fuzz/ build/fuzz/corpus \
		tests/fuzz/seeds
	build/fuzz/fuzz_daemon -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		-timeout=10 -artifact_prefix=build/fuzz/ build/fuzz/corpus_daemon \
		tests/fuzz/seeds_daemon

bench: build/smimegate
	sh bench/bench.sh

bench-gateway: build/smimegate
	sh bench/gateway.sh

format:
	clang-format -i $(CORE_SRC) $(CLI_SRC) $(UNIT_SRC) $(HDRS) $(wildcard tests/e2e/shim/*.c)

format-check:
	clang-format --dry-run --Werror $(CORE_SRC) $(CLI_SRC) $(UNIT_SRC) $(HDRS) $(wildcard tests/e2e/shim/*.c)

# PREFIX/bin/smimegate, the unit (contrib/smimegate.service with this
# PREFIX's paths) in PREFIX/lib/systemd/system, docs in
# PREFIX/share/doc/smimegate; DESTDIR for a staging root.
PREFIX  ?= /usr/local
BINDIR   = $(PREFIX)/bin
UNITDIR  = $(PREFIX)/lib/systemd/system
DOCDIR   = $(PREFIX)/share/doc/smimegate
INSTALL_BIN ?= build/smimegate
install: $(INSTALL_BIN)
	install -D -m 0755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/smimegate
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
		contrib/smimegate.service > $(DESTDIR)$(UNITDIR)/smimegate.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/smimegate.service
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/

clean:
	rm -rf build
