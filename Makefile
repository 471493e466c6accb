# SegLab: `make run` for a local stack, `make test` for the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/seglab
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: install install-test system-test-deps services run lint test migrate clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PIP) install -q -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test system-test-deps

# Debian packages the tests drive: Chromium (through Playwright, never a downloaded
# browser), docker-compose (validates docker-compose.yml offline), Fashion-MNIST, and
# slurm-wlm + munge (a one-node SLURM cluster runs deploy/slurm/seglab-worker.sbatch).
system-test-deps:
	@missing=""; \
	for pkg in chromium docker-compose dataset-fashion-mnist slurm-wlm munge; do \
		dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# PostgreSQL and Redis on this machine's standard ports; started if they are down.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done

migrate: install
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py seglab_demo
	$(PY) scripts/dev.py

# ruff (pyproject.toml's rules) and mypy (engine/, webapp/, workers/ with the Django stubs);
# no database needed. `make test` runs them first, so a lint or type error fails it.
lint: install-test
	$(PY) -m ruff check .
	$(PY) -m mypy

test: install-test services lint
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) MEDIA_ROOT=$(CURDIR)/var/test-media \
		$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf var staticfiles
