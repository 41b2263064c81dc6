# Tunnels — the two commands a newcomer needs:
#   make dev    runs the whole system locally (emulators + API + step functions)
#   make test   runs every test (unit, integration against the emulators, end to end)
# Both install what they need (Go modules, the npm emulators) on first use.

GO ?= go
export GOFLAGS ?= -buildvcs=false

include build.mk

.PHONY: browser dev test unit lint invoke deploy bench clean tidy

dev:
	$(GO) run ./infra/runner

test: lint browser
	$(GO) test -count=1 -p 2 -timeout 45m ./...

# The console's browser tests drive a headless Chromium. On a machine where this
# runs as root with apt (CI), it is installed; elsewhere those tests skip.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing Chromium for the console's browser tests"; \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) || \
	        echo "could not install Chromium: the browser tests skip"; \
	    else echo "no Chromium: the console's browser tests skip (apt-get install chromium)"; fi; }

unit:
	$(GO) test -count=1 -short ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@command -v cfn-lint >/dev/null || { echo "cfn-lint is required (pip install cfn-lint; it is preinstalled on the project machines)"; exit 1; }
	cfn-lint template.yaml

# make invoke FN=ApiFunction EVENT=events/api-health.json  (FN may also be the short name: api)
invoke:
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<function> EVENT=events/<file>.json"; exit 2; }
	$(GO) run ./infra/invoke -fn $(FN) -event $(EVENT)

deploy:
	sam build
	sam deploy --guided

# make bench [BENCH_FLAGS="-subscribers 5000"]: engine and local-stack throughput,
# AWS calls and cost per step, cold starts and memory; writes BENCHMARKS.md (infra/bench).
bench:
	$(GO) run ./infra/bench $(BENCH_FLAGS)

clean:
	rm -rf .aws-sam .tunnels
