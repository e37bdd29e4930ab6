// Activation codes shared by the C++ host code and the CUDA device code (no torch headers, so device-only
// headers can include it). Keep in sync with effkernels/_common.py ACTIVATIONS.
#pragma once

#include <cstdint>

namespace effkernels {

enum class Act : int64_t { None = 0, Relu = 1, Relu6 = 2, Silu = 3, Hardswish = 4, Sigmoid = 5, Hardsigmoid = 6 };

}  // namespace effkernels
