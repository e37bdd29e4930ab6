# effkernels: the two commands a newcomer runs (see README).
#   make test    install (with the C++/CUDA extension) and run the test suite
#   make bench   install and run the quick benchmark sweep, then print its report
#   make test-avx2  (CI, after make test) the CPU kernels built for AVX2 in a scratch copy, and their tests:
#                   the default build targets the build machine's ISA (AVX-512 on CI), so this keeps the
#                   8-lane code path tested too
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
BENCH_OUT ?= benchmarks/out

AVX2_DIR ?= build/avx2-check
.PHONY: setup test test-avx2 bench clean

# torch must be present before the extension builds (--no-build-isolation compiles against it).
setup:
	$(PIP) install "torch>=2.4" ninja setuptools wheel
	$(PIP) install --no-build-isolation -e ".[test]"
	$(PYTHON) -c "import effkernels; [print(f'  {k:6s} {\"yes\" if ok else \"no \"}  {why}') for k, (ok, why) in effkernels.backends_available().items()]"

test: setup
	$(PYTHON) -m pytest -q tests

test-avx2:
	rm -rf $(AVX2_DIR) && mkdir -p $(AVX2_DIR)
	git ls-files -z | xargs -0 cp --parents -t $(AVX2_DIR)
	cd $(AVX2_DIR) && EFFKERNELS_EXT=cpu EFFKERNELS_CPU_ARCH=avx2 $(PYTHON) setup.py -q build_ext --inplace
	cd $(AVX2_DIR) && $(PYTHON) -m pytest -q -p no:cacheprovider tests/test_extension.py tests/test_pointwise_conv.py \
		tests/test_squeeze_excite.py tests/test_mbconv.py tests/test_cpu_mbconv_fused.py -k "cpu or chunks"

bench: setup
	$(PYTHON) benchmarks/run.py --out $(BENCH_OUT)

clean:
	rm -rf build *.egg-info effkernels/_C*.so $(BENCH_OUT)
