# lowbit top-level commands. `make demo` and `make test` work on a fresh Debian machine.
BUILD_DIR ?= build/release
JOBS      ?= $(shell nproc)
LOWBIT    := $(BUILD_DIR)/lowbit
DEMO_MODEL := models/stories260K

.PHONY: all deps configure build build-cli demo test bench format clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake --preset release >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS)

# Only the lowbit binary and what it links (no tests, benchmarks or CUDA kernels): the quick path to a demo.
build-cli: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS) --target lowbit

# The main job on the bundled model: generate a story, then measure perplexity on the demo text.
demo: build-cli
	@echo "== lowbit generate (bundled $(DEMO_MODEL)) =="
	$(LOWBIT) generate $(DEMO_MODEL) --prompt "Once upon a time" --max-tokens 120 --seed 42
	@echo
	@echo "== lowbit ppl =="
	$(LOWBIT) ppl $(DEMO_MODEL) --data data/demo/tinystories_sample.txt --ctx 256

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 900

bench: build
	@bash scripts/bench.sh

format:
	@git ls-files '*.cc' '*.h' '*.cu' '*.cuh' | xargs clang-format -i

clean:
	rm -rf build
