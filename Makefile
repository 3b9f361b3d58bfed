# pier - build, run and test. `make help` lists the targets.
#
# Release objects go to build/rel, sanitizer (ASan+UBSan) objects to
# build/asan; `make test` uses the latter for every test.

CC      ?= cc
PYTHON  := /usr/bin/python3
PORT    ?= 7379
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes
BASE    := -std=c17 -D_GNU_SOURCE -pthread -g $(WARN) -Isrc -MMD -MP
REL_CFLAGS  := $(BASE) -O2
ASAN_CFLAGS := $(BASE) -O1 -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=all
LDLIBS  := -pthread -lm

SRC_ALL  := $(sort $(wildcard src/*/*.c))
SRC_MAIN := src/server/main.c
SRC_LIB  := $(filter-out $(SRC_MAIN),$(SRC_ALL))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

REL_OBJ   := $(SRC_LIB:%.c=build/rel/%.o)
ASAN_OBJ  := $(SRC_LIB:%.c=build/asan/%.o)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=build/asan/unit/%)

# Debian packages the build, the tests and the comparisons need.
DEB_PKGS := build-essential pkg-config liblz4-dev libzstd-dev \
            python3-pytest python3-redis redis-tools redis-server

.PHONY: all deps run test unit integration clean help asan

all: build/pier-server build/pier-bench  ## build the release server and tools (build/)

help:  ## list the targets
	@echo "pier make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
	  sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'

deps:  ## install missing Debian packages (apt-get; needs root)
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

run: deps all  ## build and start pier-server on 127.0.0.1:$(PORT) (foreground)
	./build/pier-server --bind 127.0.0.1 --port $(PORT)

test: deps asan  ## build with ASan+UBSan and run every test (unit + integration)
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

asan: build/asan/pier-server $(UNIT_BINS)

unit: $(UNIT_BINS)  ## run the C unit tests (sanitizer build)
	@pass=0; fail=0; for t in $(UNIT_BINS); do \
	  if $$t; then pass=$$((pass+1)); else fail=$$((fail+1)); echo "FAILED: $$t"; fi; \
	done; echo "unit: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

integration: build/asan/pier-server  ## run the pytest integration tests
	PIER_SERVER=$(CURDIR)/build/asan/pier-server $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

build/pier-server: $(REL_OBJ) build/rel/$(SRC_MAIN:.c=.o)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

build/pier-bench: tools/pier-bench.c build/rel/src/lib/histogram.o
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

build/floor-server: bench/floor-server.c
	$(CC) $(REL_CFLAGS) -o $@ $^

build/asan/pier-server: $(ASAN_OBJ) build/asan/$(SRC_MAIN:.c=.o)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LDLIBS)

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

clean:  ## remove build output
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
