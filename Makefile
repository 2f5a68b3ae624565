# From a fresh clone:
#   make test      creates .venv when missing, installs im2wav with its test extra, runs the whole suite
#   make generate  the same setup, then generates audio for a bundled example image with the bundled
#                  default model (outputs/example.wav and its spectrogram outputs/example.png)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

EXAMPLE ?= assets/examples/low_tone_plain_circle.png
MODEL ?= assets/default_model
OUT ?= outputs

.PHONY: test install generate clean

$(VENV)/.installed: pyproject.toml .ci/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[test,train,eval]" -c .ci/constraints.txt
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest tests

generate: install
	mkdir -p $(OUT)
	$(VENV)/bin/im2wav generate $(EXAMPLE) --model $(MODEL) --out $(OUT)/example.wav \
	    --spectrogram $(OUT)/example.png --seed 0 --overwrite

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
