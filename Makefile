# nestbot: local stack, tests and CI entry points. See devstack/.
SHELL := /usr/bin/env bash
GO ?= go
CONFIG ?= config.yaml
RELAY_URL ?= ws://127.0.0.1:7777

.PHONY: deps run test vet unit e2e faults relay-check fuzz stack-up stack-down clean web web-test
# one step at a time: the test steps each use both cores
.NOTPARALLEL:

## deps: install redis-server, livekit-server v1.13.5, the relay and interop/node_modules
deps:
	bash devstack/install.sh

## run: start the local stack and run the bot against it; the restart page (web/) is served on WEB_LISTEN.
## The bot runs as bin/nestbot, not under `go run`, which exits 1 on Ctrl-C (make then reports an error).
WEB_LISTEN ?= 127.0.0.1:8080
run: deps web build
	bash devstack/up.sh
	$(GO) build -o bin/nestweb ./cmd/nestweb
	NESTBOT_NOSTR_RELAYS=$(RELAY_URL) bin/nestweb --config $(CONFIG) --dir web --listen $(WEB_LISTEN) & web=$$!; trap 'kill $$web 2>/dev/null || true' EXIT; \
	NESTBOT_NOSTR_RELAYS=$(RELAY_URL) NESTBOT_NESTS_CONSOLE_URL=http://$(WEB_LISTEN)/ bin/nestbot run --config $(CONFIG)

## test: vet, unit tests with the race detector, end-to-end tests on the real stack, the fault suite, the relay module, fuzz smoke,
## the JS client library and the restart page in a real browser
test: deps
	$(MAKE) --no-print-directory vet unit e2e faults relay-check fuzz web-test

## vet: go vet and staticcheck (pinned; fetched from the Go module proxy on first use)
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
vet:
	$(GO) vet ./...
	$(GO) vet -tags faults ./e2e/
	$(GO) vet -tags web ./e2e/
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags faults ./e2e/
	$(STATICCHECK) -tags web ./e2e/

## unit: every package but e2e, with the race detector
unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/e2e$$')

## e2e: the bot end to end on real Redis, LiveKit, relays and nostr-tools (see e2e/doc.go for why not -race)
e2e:
	$(GO) test -count=1 -timeout 20m ./e2e/...

## faults: the fault suite (build tag faults): relay, Redis, LiveKit and the bot itself killed or stopped
## mid-request, three replicas, a hostile relay's forgeries and flood, poisoned DMs and the 60 s hostile soak
## (NESTBOT_SOAK=10m for the long one); without -race so that its timings
## mean something. Its FIGURES lines are the numbers in docs/reliability.md.
faults:
	set -o pipefail; $(GO) test -tags faults -count=1 -timeout 30m -run '^TestFault' -v ./e2e/ 2>&1 | grep -v '^redis: '

relay-check:
	cd devstack/relay && $(GO) vet ./... && $(GO) build -o /dev/null .

fuzz:
	bash devstack/fuzz-smoke.sh

## web: bundle the restart page (web/app.js with clients/js and nostr-tools) into web/dist/app.js with esbuild
web:
	cd web && node build.mjs

## web-test: the JS client library's node tests (clients/js) and the restart page driven in headless Chromium, both
## against the real stack (build tag web). Screenshots of each page state land in web/test/screenshots/.
web-test: web
	$(GO) vet -tags web ./e2e/
	$(GO) test -tags web -count=1 -timeout 10m -run '^(TestJSClientLibrary|TestWebConsole|TestWebConsoleTimeout)$$' -v ./e2e/

## stack-up / stack-down: persistent local stack on 127.0.0.1 (redis 6379, livekit 7880, relay 7777)
stack-up: deps
	bash devstack/up.sh

stack-down:
	bash devstack/down.sh

## clean: stop the local stack and remove its state (devstack/.run) and bin/
clean: stack-down
	rm -rf devstack/.run bin

## build: bin/nestbot in pure Go (cgo off). build-libsecp: bin/nestbot with go-nostr's libsecp256k1
## build tag (cgo, linked by Go's internal linker: about 12 MB less resident). See docs/performance.md.
.PHONY: build build-libsecp bench
build:
	CGO_ENABLED=0 $(GO) build -o bin/nestbot ./cmd/nestbot

build-libsecp:
	CGO_ENABLED=1 $(GO) build -tags libsecp256k1 -ldflags=-linkmode=internal -o bin/nestbot ./cmd/nestbot

## bench: nestbench on its own stack (about 2 minutes): the pure Go and the libsecp256k1 builds, JSON in
## bench-results/. More: make bench BENCH_FLAGS='-both -soak 10000' (docs/performance.md's figures).
BENCH_FLAGS ?= -both
bench: deps
	$(GO) run ./cmd/nestbench $(BENCH_FLAGS)
