// dwconv_bn_act's argument checks, shared by its CPU and CUDA host code and by the CPU MBConv block (whose
// depthwise part takes the same arguments under other names).
#pragma once

#include "common.h"

namespace effkernels {

// The depthwise conv's own arguments for C channels: weight [C, 1, k, k] with an odd k <= 7, bias [C],
// stride, padding, output size, activation code. Errors name `weight_name` / `bias_name`; `c_is` says
// where C comes from. Returns k.
inline int64_t check_depthwise(const at::Tensor& x, int64_t C, const char* c_is, const at::Tensor& weight,
                               const char* weight_name, const at::Tensor& bias, const char* bias_name, int64_t stride,
                               int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, int64_t activation) {
  EFFK_CHECK_ARG(weight.dim() == 4 && weight.size(0) == C && weight.size(1) == 1 && weight.size(2) == weight.size(3),
                 weight_name, "expected shape [", C, ", 1, k, k] (depthwise, ", c_is, "), got ", weight.sizes());
  const int64_t k = weight.size(2);
  EFFK_CHECK_ARG(k % 2 == 1 && k <= 7, weight_name, "expected an odd kernel size k <= 7, got k = ", k);
  check_param(weight, weight_name, weight.sizes(), x);
  check_param(bias, bias_name, {C}, x);
  EFFK_CHECK_ARG(stride == 1 || stride == 2, "stride", "expected 1 or 2, got ", stride);
  EFFK_CHECK_ARG(pad_top >= 0 && pad_left >= 0, "padding", "expected non-negative pad_top, pad_left, got ", pad_top,
                 ", ", pad_left);
  EFFK_CHECK_ARG(out_h >= 1 && out_w >= 1, "out_h/out_w", "expected a positive output size, got ", out_h, "x", out_w);
  check_act_code(activation, "activation");
  return k;
}

// Returns k.
inline int64_t check_dwconv_args(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t stride,
                                 int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, int64_t activation) {
  check_activation_tensor(x, "x");
  return check_depthwise(x, x.size(1), "C = x.shape[1]", weight, "weight", bias, "bias", stride, pad_top, pad_left,
                         out_h, out_w, activation);
}

}  // namespace effkernels
