# Motion Control — every target installs what it needs (see `make help`).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DATA ?= ../shared/data
OUT ?= out
APT_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 iproute2 util-linux
STAMP := $(VENV)/.installed

.PHONY: help setup apt models proto lint typecheck test test-integration bench demo helm-lint images clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

apt: ## install the Debian packages (EGL/Mesa for headless OpenGL, ffmpeg for checks)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(MAKE) apt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with its dev tools (apt packages too)

models: setup ## fetch the pose models (mediapipe 0.10.21 wheel from PyPI, sha256-checked) into the cache
	$(BIN)/motionctl models fetch

proto: setup ## regenerate motion/v1 from protos/motion/v1
	$(PY) tools/gen_proto.py

lint: setup ## ruff
	$(BIN)/ruff check motion services tests tools bench

typecheck: setup ## mypy on the shared code and the services
	$(BIN)/mypy motion services

test: setup models ## lint, typecheck and the whole test suite (unit + integration on loopback)
	$(MAKE) lint typecheck
	$(BIN)/pytest -q tests

test-integration: setup models ## only the tests that start real servers (gRPC, S3, Ray)
	$(BIN)/pytest -q -m integration tests

bench: setup models ## benchmarks: throughput, accuracy and speed ratios (prints figures)
	$(PY) -m bench --data $(DATA) --out $(OUT)/bench

demo: setup models ## write the sample kit and animate it into out/demo/animated.mp4
	$(BIN)/motionctl samples $(OUT)/demo
	$(BIN)/motionctl animate --image $(OUT)/demo/character.png --video $(OUT)/demo/performer.mp4 -o $(OUT)/demo/animated.mp4 \
	  --background solid:#eeeae2 --contact-sheet $(OUT)/demo/contact-sheet.png --report $(OUT)/demo/report.json

helm-lint: setup ## render and lint the Helm chart offline, validate the manifests
	$(BIN)/pytest -q -m "not integration" tests/deploy

images: ## build the container images (needs a Docker engine)
	docker build -f deploy/docker/Dockerfile.gateway -t motion-control/gateway:dev .
	docker build -f deploy/docker/Dockerfile.worker -t motion-control/worker:dev .
	docker build -f deploy/docker/Dockerfile.worker-cuda -t motion-control/worker-cuda:dev .

clean: ## remove the virtualenv and outputs
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache
