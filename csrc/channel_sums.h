// channel_sums's argument checks, shared by its CPU and CUDA host code.
#pragma once

#include "common.h"

namespace effkernels {

inline void check_channel_sums_args(const at::Tensor& x) { check_activation_tensor(x, "x"); }

}  // namespace effkernels
