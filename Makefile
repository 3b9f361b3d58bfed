# pier - build, run and test. `make help` lists the targets.
#
# Release objects go to build/rel, sanitizer (ASan+UBSan) objects to
# build/asan; `make test` uses the latter for every test.

CC      ?= cc
PYTHON  := /usr/bin/python3
PORT    ?= 7379

# Libraries from Debian, found with pkg-config: the batch protocol codecs
# (LZ4 block, zstd frame) and libcrypto (HMAC-SHA256 and random nonces for
# the cluster bus). pkg-config runs when make reads this file, so the
# entry points that install packages (run, test, bench-deps) run `deps` first
# and then build in a fresh $(MAKE) that reads the flags anew; a build target
# asked for directly stops at once, naming `make deps`, when they are missing.
PKG_CONFIG ?= pkg-config
LIB_PKGS   := liblz4 libzstd libcrypto
LIB_FOUND  := $(shell $(PKG_CONFIG) --exists $(LIB_PKGS) 2>/dev/null && echo yes)
LIB_CFLAGS := $(if $(LIB_FOUND),$(shell $(PKG_CONFIG) --cflags $(LIB_PKGS)))
LIB_LIBS   := $(if $(LIB_FOUND),$(shell $(PKG_CONFIG) --libs $(LIB_PKGS)))

# Goals that need no library: they install, print, clean, or only call $(MAKE).
NO_LIB_GOALS := deps bench-deps help clean run test lint
ifneq ($(filter-out $(NO_LIB_GOALS),$(or $(MAKECMDGOALS),all)),)
ifeq ($(LIB_FOUND),)
$(error the Debian packages pier builds with are missing ($(LIB_PKGS) not found by $(PKG_CONFIG)): run `make deps` first (or `make run` / `make test`, which install them))
endif
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes \
           -Wno-missing-field-initializers
BASE    := -std=c17 -D_GNU_SOURCE -pthread -g $(WARN) -Isrc -MMD -MP $(LIB_CFLAGS)
REL_CFLAGS  := $(BASE) -O2
ASAN_CFLAGS := $(BASE) -O1 -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=all
LDLIBS  := -pthread -lm $(LIB_LIBS)

# src/<layer>/*.c, and one folder per value type under src/types/.
SRC_ALL  := $(sort $(wildcard src/*/*.c src/types/*/*.c))
SRC_MAIN := src/server/main.c
SRC_LIB  := $(filter-out $(SRC_MAIN),$(SRC_ALL))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

TSAN_CFLAGS := $(BASE) -O1 -fno-omit-frame-pointer -fsanitize=thread
REL_OBJ   := $(SRC_LIB:%.c=build/rel/%.o)
ASAN_OBJ  := $(SRC_LIB:%.c=build/asan/%.o)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=build/asan/unit/%)

# Debian packages the build, the tests and the comparisons need.
DEB_PKGS := build-essential pkg-config liblz4-dev libzstd-dev libssl-dev \
            python3-pytest python3-redis python3-lz4 python3-zstandard \
            redis-tools redis-server \
            clang libclang-rt-dev liburing-dev
# Only the side-by-side benchmarks need these (bench/compare-etcd.sh).
BENCH_PKGS := etcd-server etcd-client libnghttp2-dev

.PHONY: all deps bench-deps run test lint tsan unit integration fault soak clean help asan libpier examples

all: build/pier-server build/pier-bench build/pier-check-aof libpier  ## build the release server and tools (build/)

# etcd's gRPC load client for bench/compare-etcd.sh (etcd ships no benchmark in Debian).
build/etcd-bench: bench/etcd-bench.c build/rel/src/lib/histogram.o
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS) -lnghttp2

help:  ## list the targets
	@echo "pier make targets:"
	@grep -hE '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | \
	  sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'

deps:  ## install missing Debian packages (apt-get; needs root)
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

bench-deps:  ## install the benchmark peers (etcd) too, then build the release tools
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_PKGS) $(BENCH_PKGS)"
	@$(MAKE) --no-print-directory all

# run and test install first, then build in a new make (see LIB_FOUND above).
run:  ## install what is missing, build, start pier-server on 127.0.0.1:7379 (PORT=...)
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	./build/pier-server --bind 127.0.0.1 --port $(PORT)

test:  ## install what is missing, build with ASan+UBSan, run every test (unit, integration, faults, fuzz corpora)
	@$(MAKE) --no-print-directory deps
	@$(PYTHON) tests/lint/check.py
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory fault
	@$(MAKE) --no-print-directory fuzz-regress

lint:  ## structure and style checks (layers, no command-name compares, function length)
	@$(PYTHON) tests/lint/check.py

asan: build/asan/pier-server build/asan/pier-check-aof $(UNIT_BINS) build/asan/test-libpier-e2e build/asan/test-libpier-cluster-e2e

unit: $(UNIT_BINS)  ## run the C unit tests (sanitizer build)
	@pass=0; fail=0; for t in $(UNIT_BINS); do \
	  if $$t; then pass=$$((pass+1)); else fail=$$((fail+1)); echo "FAILED: $$t"; fi; \
	done; echo "unit: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

# The release build too: the used_memory-accuracy and RSS tests need the
# real allocator (the sanitizers replace malloc and inflate RSS).
integration: build/asan/pier-server build/asan/pier-check-aof build/pier-server build/pier-bench build/asan/test-libpier-e2e build/asan/test-libpier-cluster-e2e examples  ## run the pytest integration tests
	PIER_SERVER=$(CURDIR)/build/asan/pier-server PIER_RELEASE_SERVER=$(CURDIR)/build/pier-server \
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# Cluster fault tests (tests/fault): node processes killed, paused and
# partitioned under load; histories checked for linearizability and the
# session guarantees.
fault: build/asan/pier-server  ## run the cluster fault tests (sanitizer build, about two minutes)
	PIER_SERVER=$(CURDIR)/build/asan/pier-server $(PYTHON) -m pytest -q -p no:cacheprovider tests/fault

soak: build/pier-server  ## run the long cluster fault runs too (release build; PIER_SOAK_SECONDS per run)
	PIER_SERVER=$(CURDIR)/build/pier-server PIER_SOAK=1 $(PYTHON) -m pytest -q -p no:cacheprovider tests/fault

build/pier-server: $(REL_OBJ) build/rel/$(SRC_MAIN:.c=.o)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

# pier-check-aof links the server's objects: it checks files with the
# server's own AOF parser, snapshot loader and command table.
build/pier-check-aof: tools/pier-check-aof.c $(REL_OBJ)
	$(CC) $(REL_CFLAGS) -o $@ $< $(REL_OBJ) $(LDLIBS)

build/asan/pier-check-aof: tools/pier-check-aof.c $(ASAN_OBJ)
	@echo "LD  $@"
	@$(CC) $(ASAN_CFLAGS) -o $@ $< $(ASAN_OBJ) $(LDLIBS)

# The load generator: tools/pier-bench/ (bench.h says what is where). It
# links the server's histogram and size parser (util_parse_memory), so its
# sizes read as the server's options do, and what util.o needs (lib/mem.h's
# out-of-memory policy, which logs).
BENCH_SRC := $(sort $(wildcard tools/pier-bench/*.c))
build/pier-bench: $(BENCH_SRC:%.c=build/rel/%.o) build/rel/src/lib/histogram.o \
                  build/rel/src/lib/util.o build/rel/src/lib/mem.o build/rel/src/lib/log.o \
                  build/libpier.a
	$(CC) $(REL_CFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

# Build trees from before the split still hold build/pier-bench.d naming
# the single source file it replaced: let that name be satisfied.
tools/pier-bench.c: ;

build/rel/tools/pier-bench/%.o: tools/pier-bench/%.c
	@mkdir -p $(dir $@)
	@echo "CC  $<"
	@$(CC) $(REL_CFLAGS) -Iclient -c -o $@ $<

# ---- libpier, the C client library (client/pier.h): KV over RESP, batch
# publisher and subscriber. The archive carries the CRC-32C it shares with
# the server, so applications link only libpier.a + liblz4 + libzstd.
CLIENT_SRC      := $(sort $(wildcard client/*.c))
CLIENT_CRC      := src/lib/crc32c.c
# libpier shares the wire codec with the server (one source for the frame
# layout) and the CRC-32C.
CLIENT_SHARED   := $(CLIENT_CRC) src/proto/batch.c
CLIENT_REL_OBJ  := $(CLIENT_SRC:%.c=build/rel/%.o) $(CLIENT_SHARED:%.c=build/rel/%.o)
CLIENT_ASAN_OBJ := $(CLIENT_SRC:%.c=build/asan/%.o) $(CLIENT_SHARED:%.c=build/asan/%.o)

libpier: build/libpier.a  ## build the client library build/libpier.a

build/libpier.a: $(CLIENT_REL_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The example programs of examples/README.md: libpier as an application
# uses it (the public header and the archive only).
EXAMPLES := $(patsubst examples/%.c,build/examples/%,$(wildcard examples/*.c))

examples: $(EXAMPLES)  ## build the libpier example programs (build/examples/, see examples/README.md)

build/examples/%: examples/%.c build/libpier.a
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -O2 -g $(WARN) -MMD -MP -Iclient -o $@ $< build/libpier.a $(LDLIBS)

build/asan/libpier.a: $(CLIENT_ASAN_OBJ)
	@rm -f $@
	@ar rcs $@ $^

# libpier's unit tests link the sanitizer archive too (its crc32c member
# is not pulled in twice: the server objects already define it).
build/asan/unit/test_libpier_%: tests/unit/test_libpier_%.c $(ASAN_OBJ) build/asan/libpier.a
	@mkdir -p $(dir $@)
	@echo "LD  $@"
	@$(CC) $(ASAN_CFLAGS) -Iclient -o $@ $< $(ASAN_OBJ) build/asan/libpier.a $(LDLIBS)

# End-to-end publisher/subscriber program of tests/integration/test_libpier.py.
# End-to-end program of tests/integration/test_libpier_cluster.py (libpier's CURP cluster client).
build/asan/test-libpier-cluster-e2e: tests/integration/libpier_cluster_e2e.c build/asan/libpier.a
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -Iclient -o $@ $(filter %.c %.a,$^) $(LDLIBS)

build/asan/test-libpier-e2e: tests/integration/libpier_e2e.c build/asan/libpier.a
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -Iclient -o $@ $(filter %.c %.a,$^) $(LDLIBS)

# Loopback TCP ceiling and a minimal batch-protocol sink (bench/compare-log.sh).
build/tcp-ceiling: bench/tcp-ceiling.c build/rel/src/lib/crc32c.o build/rel/src/lib/util.o \
                   build/rel/src/lib/mem.o build/rel/src/lib/log.o
	$(CC) $(REL_CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

build/floor-server: bench/floor-server.c
	$(CC) $(REL_CFLAGS) -o $@ $^

# The floor on io_uring (docs/BENCHMARKS.md): a measurement tool only.
build/floor-uring: bench/floor-uring.c
	$(CC) $(REL_CFLAGS) -o $@ $^ $(shell pkg-config --cflags --libs liburing)

build/asan/pier-server: $(ASAN_OBJ) build/asan/$(SRC_MAIN:.c=.o)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LDLIBS)

# ThreadSanitizer build and its stress run (not part of `make test`: about
# two minutes). TSAN_SECONDS per workload phase.
TSAN_SECONDS ?= 60
build/tsan/pier-server: $(SRC_ALL:%.c=build/tsan/%.o)
	$(CC) $(TSAN_CFLAGS) -o $@ $^ $(LDLIBS)

build/tsan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC  $< (tsan)"
	@$(CC) $(TSAN_CFLAGS) -c -o $@ $<

tsan: build/tsan/pier-server  ## ThreadSanitizer build + a multi-client stress (KV, streams, pub/sub, blocking, cluster); fails on any report
	PIER_SERVER=$(CURDIR)/build/tsan/pier-server $(PYTHON) tests/stress/tsan_stress.py --seconds $(TSAN_SECONDS)

# The command families' tests run commands in-process through the harness
# (tests/unit/cmd_harness.h).
build/asan/unit/test_cmd_%: tests/unit/test_cmd_%.c tests/unit/cmd_harness.c tests/unit/cmd_harness.h $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	@echo "LD  $@"
	@$(CC) $(ASAN_CFLAGS) -Itests/unit -o $@ $< tests/unit/cmd_harness.c $(ASAN_OBJ) $(LDLIBS)

build/asan/unit/%: tests/unit/%.c $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	@echo "LD  $@"
	@$(CC) $(ASAN_CFLAGS) -o $@ $< $(ASAN_OBJ) $(LDLIBS)

build/rel/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC  $<"
	@$(CC) $(REL_CFLAGS) -c -o $@ $<

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC  $< (asan)"
	@$(CC) $(ASAN_CFLAGS) -c -o $@ $<

# ---- fuzzing: libFuzzer harnesses tests/fuzz/fuzz_<name>.c, seeds in
# tests/fuzz/corpus/<name>/, fixed crashes in tests/fuzz/regress/<name>/.
# FUZZ_SRC_<name> lists the sources a harness links (a file may be named by
# several lists it includes: the link sorts out the duplicates).
# `make fuzz FUZZ_NAMES=resp FUZZ_SECONDS=600` fuzzes one harness.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 4096
FUZZ_NAMES   ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS   := $(filter-out -MMD -MP,$(BASE)) -O1 -fno-omit-frame-pointer \
                -fno-sanitize-recover=all
FUZZ_HDRS    := $(wildcard tests/fuzz/*.h src/*/*.h src/types/*/*.h)
FUZZ_SRC_util         := src/lib/util.c src/lib/mem.c src/lib/log.c
FUZZ_SRC_resp         := src/proto/resp_parse.c $(FUZZ_SRC_util)
FUZZ_SRC_resp_chunked := $(FUZZ_SRC_resp)
FUZZ_SRC_inline       := $(FUZZ_SRC_resp)
FUZZ_SRC_config       := src/server/config.c src/server/config_redis.c src/server/config_rewrite.c \
                         $(FUZZ_SRC_util)
FUZZ_SRC_batch        := src/proto/batch.c src/lib/crc32c.c
FUZZ_SRC_entry        := src/cluster/entry.c src/lib/hash.c $(FUZZ_SRC_util)
FUZZ_SRC_subentries   := client/frame.c client/error.c src/proto/batch.c src/lib/crc32c.c
FUZZ_SRC_bushello     := src/cluster/busauth.c
FUZZ_SRC_msg          := src/cluster/msg.c $(FUZZ_SRC_entry)
# every value type, their registration and the keyspace they register with
FUZZ_SRC_types        := $(wildcard src/types/*.c src/types/*/*.c) \
                         src/store/keyspace.c src/store/table.c src/lib/hash.c src/lib/clock.c \
                         $(FUZZ_SRC_util)
FUZZ_SRC_snapshot     := src/persist/snapshot.c src/lib/crc32c.c src/persist/fileio.c \
                         $(FUZZ_SRC_types)
FUZZ_SRC_manifest     := src/persist/manifest.c src/lib/crc32c.c src/persist/fileio.c \
                         src/lib/mem.c src/lib/log.c
FUZZ_SRC_aof          := src/persist/aof.c $(FUZZ_SRC_manifest) src/persist/snapshot.c \
                         $(FUZZ_SRC_types) $(FUZZ_SRC_resp)

.PHONY: fuzz fuzz-regress fuzz-build-bin fuzz-build-plain
.SECONDEXPANSION:

# libFuzzer build, and the plain driver (tests/fuzz/driver.c) for machines
# without libFuzzer.
build/fuzz/bin/%: tests/fuzz/fuzz_%.c $$(FUZZ_SRC_$$*) $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	@echo "FUZZ $@"
	@$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(sort $(FUZZ_SRC_$*)) $(LDLIBS)

build/fuzz/plain/%: tests/fuzz/fuzz_%.c tests/fuzz/driver.c $$(FUZZ_SRC_$$*) $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	@echo "LD  $@"
	@$(CC) $(FUZZ_FLAGS) -fsanitize=address,undefined -o $@ $< tests/fuzz/driver.c $(sort $(FUZZ_SRC_$*)) $(LDLIBS)

fuzz: $(addprefix build/fuzz/bin/,$(FUZZ_NAMES))  ## fuzz each harness FUZZ_SECONDS (60) on build/fuzz/corpus
	@fail=0; for h in $(FUZZ_NAMES); do \
	  mkdir -p build/fuzz/corpus/$$h build/fuzz/artifacts/$$h; \
	  cp -R tests/fuzz/corpus/$$h/. build/fuzz/corpus/$$h/ 2>/dev/null; \
	  extra=""; [ -d tests/fuzz/regress/$$h ] && extra=tests/fuzz/regress/$$h; \
	  echo "fuzz: $$h for $(FUZZ_SECONDS)s (log build/fuzz/fuzz-$$h.log)"; \
	  if build/fuzz/bin/$$h -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 -max_len=$(FUZZ_MAX_LEN) \
	      -artifact_prefix=build/fuzz/artifacts/$$h/ -print_final_stats=1 \
	      build/fuzz/corpus/$$h $$extra > build/fuzz/fuzz-$$h.log 2>&1; then \
	    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' build/fuzz/fuzz-$$h.log; \
	  else fail=1; echo "FAILED: fuzz $$h (crash in build/fuzz/artifacts/$$h/)"; \
	    tail -n 40 build/fuzz/fuzz-$$h.log; fi; \
	done; [ $$fail -eq 0 ]

# (aggregate targets: building named files prints "is up to date" lines)
fuzz-build-bin: $(addprefix build/fuzz/bin/,$(FUZZ_NAMES))
	@:
fuzz-build-plain: $(addprefix build/fuzz/plain/,$(FUZZ_NAMES))
	@:

fuzz-regress:  ## run every fuzz corpus and regression input once (fast)
	@mkdir -p build/fuzz; \
	if echo 'int LLVMFuzzerTestOneInput(void){return 0;}' | \
	    $(FUZZ_CC) -x c -fsanitize=fuzzer -o build/fuzz/.probe - >/dev/null 2>&1; \
	then kind=bin; else kind=plain; echo "fuzz-regress: no libFuzzer ($(FUZZ_CC)), plain driver"; fi; \
	$(MAKE) --no-print-directory fuzz-build-$$kind || exit 1; \
	fail=0; for h in $(FUZZ_NAMES); do \
	  files=$$(find tests/fuzz/corpus/$$h tests/fuzz/regress/$$h -type f 2>/dev/null | sort); \
	  [ -n "$$files" ] || continue; \
	  if build/fuzz/$$kind/$$h $$files > build/fuzz/regress-$$h.log 2>&1; then \
	    echo "fuzz-regress: $$h: $$(echo $$files | wc -w) inputs ok"; \
	  else fail=1; echo "FAILED: fuzz-regress $$h (build/fuzz/regress-$$h.log)"; \
	    tail -n 30 build/fuzz/regress-$$h.log; fi; \
	done; [ $$fail -eq 0 ]

clean:  ## remove build output
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
