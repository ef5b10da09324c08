# Two commands on a fresh machine:
#   make book   create .venv, install the pinned set, build the HTML book (notebooks executed, cached)
#   make test   create the same .venv, run every test: unit tests and nbval over every notebook (quick profile)
# Other targets: make setup, make book-ci (the -W build CI runs, quick profile), make bench, make clean.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= 2
# make test runs the quick profile; `make test TEST_PROFILE=cpu` runs every notebook at cpu size.
TEST_PROFILE ?= quick
# The profile the book is built in: LESSONS_PROFILE if set, else gpu with CUDA, else cpu.
PROFILE = $(shell LESSONS_PROFILE=$(LESSONS_PROFILE) $(BIN)/python -c "from lessons import config; print(config.current_profile())")
BOOK_OUT = _build/$(PROFILE)
BOOK_FLAGS ?= -W -n --keep-going

.PHONY: setup test book book-ci bench clean

setup: $(STAMP)

# Re-install whenever the pins or the package metadata change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,book]"
	touch $@

# Two pytest workers, one torch thread each (two kernels sharing two cores slow down tenfold).
test: setup
	LESSONS_PROFILE=$(TEST_PROFILE) MPLBACKEND=Agg PYTHONHASHSEED=0 OMP_NUM_THREADS=1 $(BIN)/python -m pytest \
	  -n $(JOBS) --dist loadscope --nbval-lax --nbval-current-env --timeout 900 \
	  -p no:cacheprovider tests notebooks

# Build the book. Notebooks run once and are cached in $(BOOK_OUT)/.jupyter_cache (one cache per
# profile, so a quick build never serves cpu-profile outputs).
book: setup
	@rm -rf _extra && $(BIN)/python -c "from lessons import viz; viz.k3d_assets('_extra')"
	PATH="$(abspath $(BIN)):$$PATH" LESSONS_BOOK_BUILD=1 MPLBACKEND=module://matplotlib_inline.backend_inline \
	  $(BIN)/jupyter-book build . --path-output $(BOOK_OUT) $(BOOK_FLAGS)
	@echo
	@echo "Book built ($(PROFILE) profile). Serve it over HTTP (k3d views need it), then open the address:"
	@echo "  $(BIN)/python -m http.server --directory $(BOOK_OUT)/_build/html 8000   # http://localhost:8000"

book-ci:
	$(MAKE) book LESSONS_PROFILE=quick

bench: setup
	$(BIN)/python benchmarks/bench_render.py

clean:
	rm -rf _build _extra .pytest_cache
