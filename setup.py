"""Build effkernels and its extension effkernels._C.

EFFKERNELS_EXT selects what is compiled:
  auto (default)  CUDA + CPU kernels when torch is a CUDA build and nvcc is found, else CPU only
  cuda | cpu      force one (cuda fails loudly without nvcc)
  none            pure-Python install: Triton and eager backends only
The CUDA arch list comes from TORCH_CUDA_ARCH_LIST (default "8.0;9.0": A100, H100/H200).
Whether a GPU is present is never consulted: a machine without one still compiles CUDA code.
EFFKERNELS_CPU_ARCH picks the CPU kernels' vector ISA on x86-64 (at::vec is compiled for it):
  auto (default)  what torch's own kernels use on the build machine
                  (torch.backends.cpu.get_cpu_capability(): AVX512 or AVX2; anything else -> generic)
  avx512          AVX-512 F/BW/VL/DQ + FMA: 16-lane fp32 vectors and 32 vector registers
  avx2            AVX2 + FMA: every x86-64 CPU since 2013
  generic         baseline x86-64
Other architectures always build generic (at::vec's portable code). A build for an ISA the running
CPU lacks fails with a clear error at the first kernel call (not SIGILL).
"""
import glob
import importlib.util
import os
import platform

from setuptools import setup

# The settings live in effkernels/_config.py (standard library only): loaded by path, before torch.
_spec = importlib.util.spec_from_file_location("_effkernels_config", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "effkernels", "_config.py"))
config = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(config)
try:
    mode = config.get("EFFKERNELS_EXT")
    cpu_arch = config.get("EFFKERNELS_CPU_ARCH")
except ValueError as e:
    raise SystemExit(str(e)) from None

ext_modules, cmdclass = [], {}
if mode != "none":
    import shutil

    nvcc = shutil.which("nvcc")
    if nvcc and not any(os.environ.get(v) for v in ("CUDA_HOME", "CUDA_PATH")):
        # torch takes CUDA_HOME from nvcc's location; a wrapper script (e.g. /usr/local/bin/nvcc) points it
        # at a directory without CUDA's headers and libraries. Fall back to the toolkit's usual home.
        root = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
        if not os.path.exists(os.path.join(root, "include", "cuda_runtime.h")) and os.path.isdir("/usr/local/cuda"):
            os.environ["CUDA_HOME"] = "/usr/local/cuda"
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    with_cuda = mode == "cuda" or (mode == "auto" and torch.version.cuda is not None and CUDA_HOME is not None)
    if mode == "cuda" and (torch.version.cuda is None or CUDA_HOME is None):
        raise SystemExit("EFFKERNELS_EXT=cuda: needs a CUDA build of torch and nvcc (set CUDA_HOME)")
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")

    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(glob.glob(os.path.join(here, "csrc", "*.cpp")) + glob.glob(os.path.join(here, "csrc", "cpu", "*.cpp")))
    sources = [os.path.relpath(s, here) for s in sources]
    cxx = ["-O3", "-fopenmp"]  # no -std: torch's headers pick the C++ standard they need
    if platform.machine().lower() not in ("x86_64", "amd64"):
        cpu_arch = "generic"
    elif cpu_arch == "auto":
        cpu_arch = {"AVX512": "avx512", "AVX2": "avx2"}.get(torch.backends.cpu.get_cpu_capability(), "generic")
    # at::vec picks its vector code (and inline namespace) from CPU_CAPABILITY*; without them it is scalar.
    if cpu_arch == "avx512":
        cxx += ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c",
                "-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512"]
    elif cpu_arch == "avx2":
        cxx += ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    print(f"effkernels: CPU kernels built for {cpu_arch}")
    link = ["-fopenmp"]
    if platform.system() == "Linux":
        # Link the libstdc++ this process runs with (torch loaded it), by path. Where the compiler's own lib dir
        # has a libstdc++.a but no usable libstdc++.so (the H200 machine's g++ wrapper: -B/opt/gcc/lib/gcc/...),
        # g++ links a private static copy into _C.so, and every C++ exception of ours (each TORCH_CHECK) then
        # crashed the process with SIGSEGV instead of raising. Listed before the driver's own -lstdc++, the
        # shared library resolves the symbols first.
        with open("/proc/self/maps") as maps:
            runtime = sorted({line.split()[-1] for line in maps if "/libstdc++.so" in line})
        link += runtime[:1]
    if with_cuda:
        sources += sorted(os.path.relpath(s, here) for s in glob.glob(os.path.join(here, "csrc", "cuda", "*.cu")))
        ext = CUDAExtension(
            "effkernels._C", sources,
            define_macros=[("EFFK_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-lineinfo"]},
            extra_link_args=link,
        )
    else:
        ext = CppExtension("effkernels._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=link)
    ext_modules = [ext]
    cmdclass = {"build_ext": BuildExtension.with_options(use_ninja=True)}

setup(ext_modules=ext_modules, cmdclass=cmdclass)
