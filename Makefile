# The README's commands. Everything goes through service/provision.sh.
.PHONY: run test lint bench stop

run:  ## install, start PostgreSQL+DaCHS, ingest the simulated demo, serve EPN-TAP on :8080
	bash service/provision.sh run

test:  ## the whole test suite against a real stack of its own (port 8098, database epnml_test)
	bash service/provision.sh install
	.venv/bin/python -m epnml.schemas.render --check
	.venv/bin/ruff check .
	.venv/bin/mypy service ingest ml schemas
	.venv/bin/python -m pytest -q

bench:  ## benchmarks (results as JSON; see README)
	.venv/bin/epnml bench all -o bench-results.json

stop:
	bash service/provision.sh stop
