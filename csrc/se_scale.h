// se_scale's argument checks, shared by its CPU and CUDA host code.
#pragma once

#include "common.h"

namespace effkernels {

inline void check_se_scale_args(const at::Tensor& x, const at::Tensor& scale) {
  check_activation_tensor(x, "x");
  check_scale(scale, x, x.size(1));
}

}  // namespace effkernels
