# QuantaSeal gateway. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/quantaseal
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
COUNT     ?= 1

.PHONY: help build run test test-short bench fuzz lint vectors generate check-generated cover clean ci

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

build: ## build bin/quantaseal
	$(GO) build -o $(BIN) ./cmd/quantaseal

run: build ## start the gateway on its embedded defaults (data in ./quantaseal-data)
	$(BIN) serve

test: ## every test under -race, starting throwaway PostgreSQL and local KMS
	scripts/test.sh test

test-short: ## the tests that need no external service
	$(GO) test -race -short ./...

bench: ## benchmarks (benchstat-friendly), with PostgreSQL and local KMS
	BENCHTIME=$(BENCHTIME) COUNT=$(COUNT) scripts/bench.sh

fuzz: ## run every Fuzz target for $(FUZZTIME)
	scripts/fuzz.sh $(FUZZTIME)

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

vectors: ## rewrite the envelope and audit test vectors (explain why in the commit)
	$(GO) test ./envelope/ ./audit/ -run Vectors -update

generate: ## regenerate checked-in generated files (Envoy examples)
	$(GO) test ./envoy/ -run Examples -update

check-generated: generate ## fail if generated files are out of date
	git diff --exit-code -- envoy/examples

cover: ## test coverage report in cover.html
	scripts/test.sh cover

clean: ## remove build output and local data
	rm -rf bin cover.out cover.html

ci: lint test ## what CI runs
