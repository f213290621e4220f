# The README's commands. `make up` runs the whole system; `make test` runs the test suite.
# Both create .venv if it is missing and (re)install the project with its test extra, pinned by
# constraints.txt, whenever pyproject.toml or constraints.txt changed.

PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: up test lint install constraints

up: $(INSTALLED)
	exec $(VENV)/bin/nurture up --port $${PORT:-8000}

test: $(INSTALLED)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/lint-imports
	@if [ -x $(VENV)/bin/ruff ]; then $(VENV)/bin/ruff check .; \
	else echo "ruff is not in the test extra; '$(VENV)/bin/pip install ruff' to check style"; fi

install: $(INSTALLED)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

# Re-lock: the newest versions pyproject.toml allows, installed here, then written down as the
# closure of the project's requirements (so tools installed by hand, like ruff, stay out).
# Run `make test` afterwards: constraints.txt is meant to be the set the suite passed with.
constraints: | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	$(VENV)/bin/python -c "$$LOCK_SCRIPT" > constraints.txt.new
	mv constraints.txt.new constraints.txt
	touch $(INSTALLED)

define LOCK_SCRIPT
import importlib.metadata as md
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

found = {}
def visit(name, extras):
    key = canonicalize_name(name)
    seen = found.get(key)
    if seen is not None and extras <= seen:
        return
    found[key] = (seen or frozenset()) | extras
    for line in md.distribution(name).requires or []:
        req = Requirement(line)
        envs = [{"extra": e} for e in extras or {""}]
        if req.marker is None or any(req.marker.evaluate(e) for e in envs):
            visit(req.name, frozenset(req.extras))
visit("nurture", frozenset({"test"}))
del found["nurture"]
print("# Exact versions of everything the project and its test extra need: the set the test suite")
print("# passed with. Used as `pip install -c constraints.txt -e '.[test]'` (make up, make test).")
print("# Regenerate after changing the ranges in pyproject.toml: `make constraints`, then `make test`.")
for key in sorted(found):
    dist = md.distribution(key)
    print(f"{dist.metadata['Name']}=={dist.version}")
endef
export LOCK_SCRIPT
