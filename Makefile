# Convenience wrappers; bootstrap.sh works without make.
.PHONY: demo test test-fast bench
demo:
	bash bootstrap.sh demo
test:
	bash bootstrap.sh test
test-fast:
	bash bootstrap.sh test -m "not slow"
bench:
	bash bootstrap.sh install embed && .venv/bin/python bench/bench_build.py
