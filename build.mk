# build.mk: how each Lambda function is built. Included by the Makefile.
#
# `sam build` (BuildMethod: makefile, CodeUri: .) runs
#     make build-<LogicalId> ARTIFACTS_DIR=<dir>
# for every function in template.yaml and packages <dir>/bootstrap for the
# provided.al2023 arm64 runtime. shared/samtemplate's tests check that every
# function in the template has its target here, and run the targets the same way.

# Where this file is, so `build` can call its own targets whether it runs as
# `make build` (through the Makefile) or `make -f build.mk build`.
BUILD_MK := $(lastword $(MAKEFILE_LIST))

# Function folders under functions/ and their template logical ids, in the same order.
FUNCTIONS := api editor flow tags email crm webhook scheduler
FUNCTION_IDS := ApiFunction EditorFunction FlowFunction TagsFunction EmailFunction CrmFunction WebhookFunction SchedulerFunction

# Lambda runs arm64 (Graviton). The local runtime interface emulator runs the
# binary natively, so `make invoke` overrides this with the host's GOARCH.
GOARCH ?= arm64

# Where `make build` puts the binaries: the layout `sam build` produces.
SAM_BUILD_DIR ?= .aws-sam/build

.PHONY: build build-artifacts-dir $(addprefix build-,$(FUNCTION_IDS)) $(addprefix build-sam-,$(FUNCTION_IDS))

# An empty ARTIFACTS_DIR would write /bootstrap: refuse.
build-artifacts-dir:
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (make build-<LogicalId> ARTIFACTS_DIR=<dir>)" >&2; exit 1; }
	@mkdir -p "$(ARTIFACTS_DIR)"

build-ApiFunction: build-artifacts-dir
	GOOS=linux GOARCH=$(GOARCH) CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/api

build-EditorFunction: build-artifacts-dir
	GOOS=linux GOARCH=$(GOARCH) CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/editor

build-FlowFunction: build-artifacts-dir
	GOOS=linux GOARCH=$(GOARCH) CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/flow

build-TagsFunction: build-artifacts-dir
	GOOS=linux GOARCH=$(GOARCH) CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/tags

build-EmailFunction: build-artifacts-dir
	GOOS=linux GOARCH=$(GOARCH) CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/email

build-CrmFunction: build-artifacts-dir
	GOOS=linux GOARCH=$(GOARCH) CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/crm

build-WebhookFunction: build-artifacts-dir
	GOOS=linux GOARCH=$(GOARCH) CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/webhook

build-SchedulerFunction: build-artifacts-dir
	GOOS=linux GOARCH=$(GOARCH) CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap ./functions/scheduler

# Cross-compile every function into $(SAM_BUILD_DIR)/<LogicalId>/bootstrap, each
# through its own target (same flags as `sam build`); `make -j build` runs them side by side.
build: $(addprefix build-sam-,$(FUNCTION_IDS))

$(addprefix build-sam-,$(FUNCTION_IDS)): build-sam-%:
	@$(MAKE) --no-print-directory -f $(BUILD_MK) build-$* ARTIFACTS_DIR=$(abspath $(SAM_BUILD_DIR))/$*
