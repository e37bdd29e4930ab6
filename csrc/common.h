// Shared by every effkernels C++/CUDA kernel: activation codes and argument checks.
#pragma once

#include <torch/types.h>

namespace effkernels {

// Keep in sync with effkernels/_common.py ACTIVATIONS.
enum class Act : int64_t { None = 0, Relu = 1, Relu6 = 2, Silu = 3, Hardswish = 4, Sigmoid = 5, Hardsigmoid = 6 };

// TORCH_CHECK with a message that names the argument, the way the Python layer words it.
#define EFFK_CHECK_ARG(cond, arg, ...) TORCH_CHECK(cond, arg, ": ", __VA_ARGS__)

}  // namespace effkernels
