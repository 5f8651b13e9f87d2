# The two commands of the README:
#   make demo   - builds mia and mia-server, starts a local server, submits the
#                 demo audit with --follow, downloads the report to
#                 demo-out/report and stops the server
#   make test   - builds everything and runs the whole test suite
# make demo-local runs the same audit without a server (mia audit); make
# demo-llm runs configs/llm-demo.yaml (a GPT on Debian's fortunes) through the
# server, its report in demo-out/llm-demo.
# Both install missing Debian packages first (scripts/install-deps.sh).
BUILD ?= build
BUILD_TYPE ?= Release
CMAKE_ARGS ?=
# CI builds with warnings as errors.
ifneq ($(CI),)
CMAKE_ARGS += -DMIA_WERROR=ON
endif
JOBS ?= $(shell nproc)
# ccache keys on paths relative to the checkout, so that a fresh clone in
# another folder (CI) reuses what an earlier build of the same sources compiled.
export CCACHE_BASEDIR ?= $(CURDIR)

.PHONY: all deps configure build test demo demo-local demo-llm bench clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: configure
	cmake --build $(BUILD) -j $(JOBS) --target mia mia-server
	bash scripts/demo-server.sh $(BUILD)

demo-llm: configure
	cmake --build $(BUILD) -j $(JOBS) --target mia mia-server
	bash scripts/demo-server.sh $(BUILD) configs/llm-demo.yaml

demo-local: configure
	cmake --build $(BUILD) -j $(JOBS) --target mia
	bash scripts/demo.sh $(BUILD)

bench: configure
	cmake --build $(BUILD) -j $(JOBS) --target mia mia_bench
	bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD)
