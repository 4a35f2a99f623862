# Tessera. `make run` and `make test` work on a fresh machine with Python 3.11+ and Node.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask
export FLASK_APP := wsgi:app

.PHONY: install run serve loadtest test test-browser test-pg test-faults bench lint translations translations-update clean

install: $(VENV)/.installed static/vendor/.installed translations/.compiled

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

static/vendor/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
	cp node_modules/@picocss/pico/css/pico.min.css static/vendor/pico.min.css
	touch $@

translations/.compiled: $(VENV)/.installed $(wildcard translations/*/LC_MESSAGES/messages.po)
	$(VENV)/bin/pybabel compile -d translations
	touch $@

run: install
	$(FLASK) db upgrade
	$(FLASK) seed
	@echo "Serving on http://127.0.0.1:5000 (admin at /admin); one job consumer alongside."
	@$(FLASK) jobs run --workers 1 & consumer=$$!; \
	  trap 'kill $$consumer 2>/dev/null' EXIT INT TERM; \
	  $(FLASK) run --host 127.0.0.1 --port 5000

# The production set-up on this machine: PostgreSQL, Redis, gunicorn, two consumers.
serve: install
	$(PY) -m deploy.serve

# 60 s of mixed load against that set-up on a fresh database, then the drift checks.
loadtest: install
	$(PY) -m bench.loadtest

test: install
	$(PY) -m pytest -q -m "not browser"

test-pg: install
	@test -n "$$TEST_DATABASE_URL" || (echo "set TEST_DATABASE_URL"; exit 2)
	$(PY) -m pytest -q -m "not browser"

# The faults of docs/operations.md ("Faults"): a killed consumer, Redis away, a webhook during
# fulfilment; the PostgreSQL restart too when TEST_DATABASE_URL points at PostgreSQL.
test-faults: install
	$(PY) -m pytest -q tests/faults

test-browser: install
	$(PY) -m pytest -q -m browser tests/browser

bench: install
	$(PY) -m bench.run

lint: install
	$(VENV)/bin/ruff check portal tests bench deploy migrations gunicorn.conf.py

translations-update: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k lazy_ngettext:1,2 -k lazy_pgettext:1c,2 -o translations/messages.pot .
	$(VENV)/bin/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching

clean:
	rm -rf $(VENV) node_modules static/vendor translations/.compiled
