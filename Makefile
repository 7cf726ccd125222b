# lora — see README.md. Targets:
#   make deps     install Debian packages (Vulkan loader, lavapipe, glslc, gcc)
#   make build    build bin/lora
#   make test     install deps and run every test (what CI runs)
#   make lint     go vet, gofmt, and lora lint on the shipped recipes
#   make demo     install deps, build, seed the offline cache, run recipes/alpaca-chat.yaml
#   make bench    run the benchmarks and print figures for docs/BENCHMARKS.md
#   make shaders  recompile shaders/*.comp to the committed SPIR-V (needs glslc)

GO       ?= go
BIN      := bin/lora
SHARED   ?= ../shared/data
RUNS     ?= runs
BENCHTIME ?= 1x

.PHONY: all deps build test lint demo bench shaders check-shaders fuzz clean

all: build

deps:
	@sh scripts/install-deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/lora

test: deps
	$(GO) vet ./...
	$(GO) test -timeout 20m ./...

lint: build
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd pkg shaders schemas)" || (gofmt -l cmd pkg shaders schemas; echo "gofmt: files above need formatting"; exit 1)
	$(BIN) lint recipes/*.yaml

demo: deps build
	@sh scripts/demo.sh

bench: build
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./pkg/... | tee bench.out

shaders:
	sh shaders/build.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime 60s ./pkg/gguf
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime 60s ./pkg/safetensors

clean:
	rm -rf bin bench.out
