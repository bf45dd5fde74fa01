# Chronik: the two commands are `make run` and `make test`.
BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all build run test unit bench fuzz fuzz-run setup format clean codegen

all: build

# Installs the packages the build, tests and benchmarks need (quick when all is there).
setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# Build and start the server with its embedded defaults (data in ./data, Kafka on 9092).
run: build
	./$(BUILD)/chronik-server start

# Unit tests, codec check, fuzz smoke run and integration tests with real clients, all
# against an AddressSanitizer/UBSan build.
test: setup
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCK_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(TEST_BUILD) -j$(JOBS)
	@cd $(TEST_BUILD) && ctest --output-on-failure --timeout 1200

unit:
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCK_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j$(JOBS) --target ck-unit
	@./$(TEST_BUILD)/ck-unit

bench: build
	@bash bench/run.sh $(BUILD) && bash bench/sql.sh $(BUILD) && bash bench/search.sh $(BUILD) && bash bench/vector.sh $(BUILD)

# libFuzzer targets (clang); `make fuzz-run` runs each for a bounded time.
fuzz: setup
	@CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCK_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS)

fuzz-run: fuzz
	@bash tests/fuzz/run.sh build-fuzz $${FUZZ_SECONDS:-60}

codegen:
	/usr/bin/python3 tools/kafka_codegen.py ../shared/kafka-protocol src/kafka/gen

format:
	@find src tests bench -name '*.[ch]' -not -path 'src/kafka/gen/*' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(TEST_BUILD) build-fuzz
