# payflow — the two commands are `make up` and `make test`.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -buildvcs=false

.PHONY: up down status test test-unit test-integration check-rules bench gen-token restart vet

## up: install what is missing, start MariaDB, RabbitMQ, Temporal, geth, Prometheus, the worker and the starter
##     TEMPORAL=cluster: the Temporal server on PostgreSQL (4 history shards) instead of the dev server;
##     PAYFLOW_WORKERS=2: two worker processes (docs/dev-stack.md)
TEMPORAL ?=
export TEMPORAL
up:
	@scripts/stack.sh up

## down: stop what `make up` started
down:
	@scripts/stack.sh down

status:
	@scripts/stack.sh status

## restart: rebuild and restart the worker and the starter only
restart:
	@scripts/stack.sh restart-payflow

vet:
	$(GO) vet ./...

## check-rules: check the Prometheus alert rules and run their unit tests (promtool: make up installs it)
check-rules:
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

## test: unit tests and integration tests against the real local stack (started if needed),
##       with two workers (PAYFLOW_WORKERS=2 unless set: `make test PAYFLOW_WORKERS=1` for one)
test test-integration: export PAYFLOW_WORKERS ?= 2
test: up vet check-rules
	@scripts/stack.sh refresh
	$(GO) test -count=1 -timeout 30m ./... 2>&1 | tee .dev/logs/test.log; exit $${PIPESTATUS[0]}

test-unit: up
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)

test-integration: up
	$(GO) test -count=1 -v -timeout 30m ./integration/...

## gen-token: regenerate chain/token (ABI, bytecode, Go bindings) from TestUSDT.sol and TestUSDC.sol
gen-token:
	@test -x bin/abigen || GOBIN=$(CURDIR)/bin $(GO) install github.com/ethereum/go-ethereum/cmd/abigen@$$($(GO) list -m -f '{{.Version}}' github.com/ethereum/go-ethereum)
	chain/token/gen.sh

## bench: measure payflow against its targets on the running stack (QUICK=1 for a short run)
bench: up
	@scripts/stack.sh refresh
	$(GO) build -o bin/payflow-bench ./cmd/payflow-bench
	bin/payflow-bench $(if $(QUICK),-quick) $(BENCH_FLAGS) 2>&1 | tee .dev/logs/bench.txt; exit $${PIPESTATUS[0]}
