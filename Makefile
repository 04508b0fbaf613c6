# medic: the two commands are `make demo` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# No "Entering directory" lines from the sub-makes CMake generates.
MAKEFLAGS += --no-print-directory

.PHONY: all bootstrap bootstrap-demo build build-medic demo test test-sanitize bench clean

all: build

bootstrap:
	@scripts/bootstrap

# The demo needs neither QEMU nor the tests: fewer packages, one target.
bootstrap-demo:
	@scripts/bootstrap demo

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: bootstrap $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-medic: bootstrap-demo $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target medic

demo: build-medic
	@scripts/demo $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer; each fuzz
# target runs for 60 s there (4 s in `make test`).
test-sanitize: bootstrap
	cmake -S . -B $(BUILD)-asan -DMEDIC_SANITIZE=ON -DMEDIC_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build $(BUILD)-asan -j $(JOBS) --target unit_tests
	cd $(BUILD)-asan && MEDIC_FUZZ_SECONDS=60 MEDIC_FUZZ_MAX_INPUTS=100000000 ctest --output-on-failure -j $(JOBS) -L '^(unit|fuzz)$$' --timeout 600

bench: build
	@scripts/bench $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD)-asan
