# taskrun: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTO_FILES := $(wildcard protos/taskrun/v1/*.proto)
NODE_BIN := node_modules/.bin

.PHONY: codegen install install-run node-deps run test bench conformance scale-out rolling-restart protos protos-check lint typecheck buf-lint check lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

## Installs come from the locks in requirements/ (every version pinned, every file hashed), then
## the project itself without resolving anything again. `make lock` refreshes the locks.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements/dev.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.run-installed

## What running needs and no more: the server and the embedded Postgres, no dev tools.
$(VENV)/.run-installed: $(BIN)/python pyproject.toml requirements/run.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements/run.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

install-run: $(VENV)/.run-installed

LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet
## Re-resolve the locks from pyproject.toml (needs PyPI): dev (CI, make test), run (make run:
## server and embedded Postgres), server (the image: the server alone).
lock: install
	$(LOCK) --extra dev -o requirements/dev.lock
	$(LOCK) --extra embedded -o requirements/run.lock
	$(LOCK) --extra server -o requirements/server.lock

## Generate the Python stubs (grpcio-tools + mypy-protobuf) into gen/taskrun/v1.
protos: install
	rm -rf gen/taskrun
	mkdir -p gen/taskrun/v1
	$(BIN)/python -m grpc_tools.protoc -I protos \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		--python_out=gen --grpc_python_out=gen --mypy_out=gen --mypy_grpc_out=gen \
		$(PROTO_FILES)
	# With their comments, for server reflection (`grpcurl describe` shows them).
	$(BIN)/python -m grpc_tools.protoc -I protos --include_source_info \
		--descriptor_set_out=gen/taskrun/v1/descriptors.binpb $(PROTO_FILES)
	echo '"""Generated protobuf and gRPC stubs for the taskrun.v1 contract. Do not edit."""' > gen/taskrun/__init__.py
	cp gen/taskrun/__init__.py gen/taskrun/v1/__init__.py
	touch gen/taskrun/py.typed

## Fail when the committed stubs differ from what `make protos` produces.
protos-check: protos
	@git diff --exit-code --stat -- gen/ || (echo "gen/ is stale: run 'make protos' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- gen/)" || (echo "gen/ has untracked files: run 'make protos' and commit" && git status --porcelain -- gen/ && exit 1)

run: install-run
	$(BIN)/taskrun-server serve

## Node tooling (buf, grpc-js) for the buf curl and polyglot tests; skipped where npm is absent.
node-deps:
	@if command -v npm >/dev/null 2>&1; then \
		[ node_modules/.installed -nt package.json ] || \
		(npm install --no-audit --no-fund --silent && touch node_modules/.installed); \
	else echo "npm not found: the buf curl and Node.js client tests will be skipped"; fi

test: install node-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

## The same scenarios through a real Prefect 3.9.1 server and taskrun, compared field by field.
## Installs Prefect into .conformance/prefect-venv on first use (not part of `make test`).
conformance: install
	$(BIN)/python -m conformance $(CONFORMANCE_ARGS)

## 1, 2 and 3 replicas behind nginx grpc_pass (needs Debian's nginx-light).
scale-out: install
	$(BIN)/python -m bench.scale_out $(SCALE_ARGS)

## Two replicas behind nginx restarted one after the other under load (needs nginx-light).
rolling-restart: install
	$(BIN)/python -m bench.rolling_restart

## TypeScript and Go from the same contract, into gen/ts and gen/go (not committed: consumers
## generate their own), the TypeScript type-checked. Needs `npm install`, and for Go
## protoc-gen-go / protoc-gen-go-grpc on PATH (CODEGEN_TEMPLATE=buf.gen.ts.yaml: TypeScript only).
CODEGEN_TEMPLATE ?= buf.gen.yaml
codegen: $(NODE_BIN)/buf
	rm -rf gen/ts gen/go
	cd protos && ../$(NODE_BIN)/buf generate --template $(CODEGEN_TEMPLATE)
	$(NODE_BIN)/tsc --noEmit --strict --target es2022 --module nodenext --moduleResolution nodenext \
		--skipLibCheck $$(find gen/ts -name '*.ts')

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

$(NODE_BIN)/buf: package.json
	npm install --no-audit --no-fund --silent
	touch $@

buf-lint: $(NODE_BIN)/buf
	cd protos && ../$(NODE_BIN)/buf lint

check: lint typecheck buf-lint protos-check test

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .taskrun .conformance gen/ts gen/go
