# Shortcuts for the README's commands; everything goes through service/provision.sh.
.PHONY: run test bench stop

run:
	bash service/provision.sh run

test:
	bash service/provision.sh test

bench:
	.venv/bin/epnml bench all -o bench-results.json

stop:
	bash service/provision.sh stop
