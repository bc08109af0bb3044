# Top-level entry points. `make run` and `make test` work on a fresh Debian 12
# machine: each first installs the missing packages (tools/install-deps).
#   make            build into build/
#   make run        hookq run with examples/hookq.ini on an embedded Redis
#   make test       unit + integration tests (ctest), all but the label long
#   make test-long  the full-size runs (ctest label long)
#   make bench      benchmarks with their baselines (bench/run)
#   make fuzz       each tests/fuzz target under libFuzzer (clang) for FUZZ_SECONDS
#   make install    PREFIX=/usr/local
#   make deb        Debian packages in $(BUILD)/deb/ (tools/build-deb), checked by lintian
# Knobs: BUILD=dir, WERROR=1, SANITIZE=address,undefined, CTEST_ARGS=...,
#        TESTS=regex (only the tests it matches, passed to ctest -R as
#        written: make test TESTS='worker_order$|intake'),
#        FUZZ_SECONDS=60 (per target), FUZZ_TARGETS="envelope config ..." (default all)
BUILD    ?= build
PREFIX   ?= /usr/local
WERROR   ?= 0
SANITIZE ?=
BUILD_TYPE ?= RelWithDebInfo
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
# TESTS is read with $(value): a regex's '$' is not make's.
TEST_FILTER = $(if $(value TESTS),-R '$(value TESTS)')
CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
              -DHQ_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF) -DHQ_SANITIZE=$(SANITIZE)

.PHONY: all build deps deps-test deps-bench deps-fuzz deps-deb run test test-long bench fuzz install deb clean format

all: build

deps:
	@tools/install-deps build
deps-test:
	@tools/install-deps test
deps-bench:
	@tools/install-deps bench
deps-fuzz:
	@tools/install-deps fuzz
deps-deb:
	@tools/install-deps deb

build:
	@command -v cmake >/dev/null 2>&1 || tools/install-deps build
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: deps build
	tools/run-demo $(BUILD)

test: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j 2 -LE long $(TEST_FILTER) $(CTEST_ARGS)

# The full-size runs (label long): the 1,000-job rate test, cluster failovers.
test-long: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j 2 -L long $(TEST_FILTER) $(CTEST_ARGS)

bench: deps-bench
	$(MAKE) build BUILD_TYPE=Release BUILD=$(BUILD)-release
	bench/run $(BUILD)-release

# libFuzzer and ASan+UBSan need clang: a build dir of its own.
fuzz: deps-fuzz
	CC=clang cmake -S . -B $(BUILD)-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHQ_FUZZ=ON \
	      -DHQ_SANITIZE=address,undefined >/dev/null
	cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzz
	tests/fuzz/run $(BUILD)-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

install: build
	cmake --install $(BUILD)

deb: deps-deb
	tools/build-deb $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD)-release $(BUILD)-asan $(BUILD)-fuzz
