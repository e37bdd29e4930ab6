// pointwise_conv's argument checks, shared by its CPU and CUDA host code.
#pragma once

#include "common.h"

namespace effkernels {

inline void check_pointwise_args(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                 int64_t activation, const std::optional<at::Tensor>& scale,
                                 const std::optional<at::Tensor>& residual) {
  check_activation_tensor(x, "x");
  const int64_t Cin = x.size(1);
  EFFK_CHECK_ARG(weight.dim() == 2 && weight.size(1) == Cin, "weight",
                 "expected shape [C_out, ", Cin, "] (C_in = x.shape[1]), got ", weight.sizes());
  const int64_t Cout = weight.size(0);
  check_param(weight, "weight", weight.sizes(), x);
  check_param(bias, "bias", {Cout}, x);
  check_act_code(activation, "activation");
  if (scale) check_scale(*scale, x, Cin);
  if (residual) {
    const at::Tensor& r = *residual;
    EFFK_CHECK_ARG(r.dim() == 4 && r.size(0) == x.size(0) && r.size(1) == Cout && r.size(2) == x.size(2) &&
                       r.size(3) == x.size(3),
                   "residual", "expected shape [", x.size(0), ", ", Cout, ", ", x.size(2), ", ", x.size(3),
                   "] (the output's), got ", r.sizes());
    EFFK_CHECK_ARG(r.scalar_type() == x.scalar_type(), "residual", "expected x's dtype ", x.scalar_type(), ", got ",
                   r.scalar_type());
    EFFK_CHECK_ARG(r.device() == x.device(), "residual", "expected a tensor on ", x.device(), ", got one on ",
                   r.device());
  }
}

}  // namespace effkernels
