# medic: the two commands are `make demo` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all bootstrap build demo test test-sanitize bench clean

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: bootstrap $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	@scripts/demo $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitize: bootstrap
	cmake -S . -B $(BUILD)-asan -DMEDIC_SANITIZE=ON -DMEDIC_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build $(BUILD)-asan -j $(JOBS) --target unit_tests
	cd $(BUILD)-asan && ctest --output-on-failure -j $(JOBS) -L unit --timeout 600

bench: build
	@scripts/bench $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD)-asan
