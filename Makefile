# effkernels: the two commands a newcomer runs (see README).
#   make test    install (with the C++/CUDA extension) and run the test suite
#   make bench   install and run the quick benchmark sweep, then print its report
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
BENCH_OUT ?= benchmarks/out

.PHONY: setup test bench clean

# torch must be present before the extension builds (--no-build-isolation compiles against it).
setup:
	$(PIP) install "torch>=2.4" ninja setuptools wheel
	$(PIP) install --no-build-isolation -e ".[test]"
	$(PYTHON) -c "import effkernels; [print(f'  {k:6s} {\"yes\" if ok else \"no \"}  {why}') for k, (ok, why) in effkernels.backends_available().items()]"

test: setup
	$(PYTHON) -m pytest -q tests

bench: setup
	$(PYTHON) benchmarks/run.py --out $(BENCH_OUT)

clean:
	rm -rf build *.egg-info effkernels/_C*.so $(BENCH_OUT)
