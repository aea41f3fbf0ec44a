# CreditDesk. `make run` to try it, `make test` to check it. Both build .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
WEB_PORT ?= 8000
export WEB_PORT

.PHONY: run test lint venv lock clean bench browser pooler sdk reliability

venv: $(VENV)/.installed

$(VENV)/.installed: requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $@

run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py setup_demo
	@echo ""
	@echo "  Admin        http://127.0.0.1:$(WEB_PORT)/admin/"
	@echo "  API docs     http://127.0.0.1:$(WEB_PORT)/api/docs/"
	@echo "  API schema   http://127.0.0.1:$(WEB_PORT)/api/schema/"
	@echo "  Health       http://127.0.0.1:$(WEB_PORT)/healthz"
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Debian packages a test needs, installed when missing (as root, or through sudo):
# $(call apt_install,WHAT FOR,PACKAGES).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
apt_install = echo "Installing Debian's $(2) for $(1)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -qq $(2) >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(2) >/dev/null; }

# Chromium and ChromeDriver for the browser tests (tests/billing/test_browser.py and others).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  $(call apt_install,the browser test,chromium chromium-driver); }

# PgBouncer for the pooler test (tests/core/test_pooler.py).
pooler:
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || { \
	  $(call apt_install,the pooler test,pgbouncer); }

# lint-imports: the layer order and no import cycles (.importlinter); mypy: the Python
# client is typed (strict).
test: lint browser pooler
	$(BIN)/lint-imports
	$(BIN)/mypy --strict --no-incremental clients/python/src
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py sqlfunctions --check
	# Two workers, one per core: each has its own test database, Celery queue and demo clock.
	$(BIN)/pytest -n 2

# The fault suite alone, printing what each fault did (docs/operations.md). Needs PostgreSQL
# and Redis, as `make test` does for these tests: DATABASE_URL=postgres://… REDIS_URL=redis://…
reliability: venv
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/pytest -m reliability -rP

# Re-pin dependencies after editing requirements/*.in.
lock: venv
	$(BIN)/pip-compile --quiet --strip-extras --no-header --allow-unsafe --no-emit-index-url --no-emit-find-links -o requirements/base.txt requirements/base.in
	$(BIN)/pip-compile --quiet --strip-extras --no-header --allow-unsafe --no-emit-index-url --no-emit-find-links -o requirements/dev.txt requirements/dev.in

# The Python client's wheel and sdist, into clients/python/dist/ (docs/sdk.md).
sdk: venv
	$(BIN)/python -m build --no-isolation --outdir clients/python/dist clients/python

clean:
	rm -rf $(VENV) var db.sqlite3 db.sqlite3-* staticfiles clients/python/dist
