# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3

.PHONY: install run test conformance lint bench proto

install:
	$(PYTHON) -m pip install -q -e '.[dev]'

run:
	$(PYTHON) -m pip install -q -e .
	$(PYTHON) -m fastws --insecure  # the open demo; see docs/security.md before exposing it

test:
	bash scripts/test.sh

# Every Autobahn case with both codecs, as server and as client, then docs/conformance.md.
AUTOBAHN = $(PYTHON) -m pytest -p no:cacheprovider -m autobahn --autobahn-full tests/conformance/test_autobahn.py
conformance:
	bash scripts/concurrently.sh \
		autobahn-server "$(AUTOBAHN)::test_server_passes_autobahn" \
		autobahn-client "$(AUTOBAHN)::test_client_passes_autobahn"; \
	status=$$?; $(PYTHON) -m tests.conformance.report && exit $$status

lint:
	$(PYTHON) -m ruff check fastws tests bench examples

bench:
	$(PYTHON) -m bench run

# The Protobuf module of the hub protocol, from its schema (checked in; a test compares).
proto:
	$(PYTHON) -m grpc_tools.protoc -I. --python_out=. fastws/hub/protocol/hub.proto
