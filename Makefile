# Common tasks. `make test` is the README's test command and what CI runs.
PYTHON ?= python3

.PHONY: install deepinv test lint format check-cuda check-triton check-extension check-wheel bench report gpu-check demo

install:
	$(PYTHON) -m pip install -c constraints.txt -e ".[test]"

test:
	pytest -q -p no:cacheprovider

# deepinv 0.5, the oracle of the interop tests (tests/interop/), with only what its import needs:
# its torchvision requirement would pull a CUDA torch, so the tests load it beside a stub of
# torchvision (benchmarks/deepinv_compat.py); without it those tests skip, saying so
deepinv:
	$(PYTHON) -m pip install -c constraints.txt --no-deps deepinv requests urllib3 idna certifi charset-normalizer natsort

lint:
	ruff check .
	ruff format --check .

format:
	ruff check --fix .
	ruff format .

check-cuda:
	bash .ci/check_cuda.sh

# build pnpfast._C against a CUDA torch in a cached venv outside the checkout (PNPFAST_CUDA_VENV,
# default ~/.cache/pnpfast-ci/cuda-venv), import it without a GPU, check its ops and opcheck them
check-extension:
	bash .ci/check_extension.sh

# every Triton kernel specialisation the launchers use, compiled for sm_80 and sm_90 without a
# GPU; fails on spills or local memory; rewrites benchmarks/results/triton_resources.jsonl
check-triton:
	$(PYTHON) .ci/aot_triton.py

# build sdist and wheel, install the wheel in a fresh venv, run the demo and a smoke set there
check-wheel:
	bash .ci/check_wheel.sh

bench:
	$(PYTHON) benchmarks/bench_fft_prox.py

report:
	$(PYTHON) benchmarks/report.py --update-readme

gpu-check:
	bash benchmarks/gpu_check.sh

demo:
	pnpfast demo
