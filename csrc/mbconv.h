// mbconv's own argument checks, shared by its CUDA host code (cuda/mbconv.cu) and the CPU block kernels
// (cpu/mbconv_block.cpp). The steps check the rest: cuda/mbconv.cu calls each op's checks (csrc/<op>.h),
// cpu/mbconv_block.cpp its own.
#pragma once

#include "common.h"

namespace effkernels {

inline void check_mbconv_args(const at::Tensor& x, const std::optional<at::Tensor>& expand_w,
                              const std::optional<at::Tensor>& expand_b, const std::optional<at::Tensor>& se_w1,
                              const std::optional<at::Tensor>& se_b1, const std::optional<at::Tensor>& se_w2,
                              const std::optional<at::Tensor>& se_b2, int64_t c_out, bool residual, int64_t out_h,
                              int64_t out_w) {
  check_activation_tensor(x, "x");
  EFFK_CHECK_ARG(expand_w.has_value() == expand_b.has_value(), "expand_w/expand_b",
                 "expected both or neither (neither when the expand ratio is 1)");
  const bool has_se = se_w1.has_value();
  EFFK_CHECK_ARG(se_b1.has_value() == has_se && se_w2.has_value() == has_se && se_b2.has_value() == has_se,
                 "se_w1/se_b1/se_w2/se_b2", "expected all four or none (none for a block without SE)");
  if (residual) {
    EFFK_CHECK_ARG(c_out == x.size(1) && out_h == x.size(2) && out_w == x.size(3), "residual",
                   "needs an output shaped like x (stride 1, C_out == C_in = ", x.size(1), "), got C_out ", c_out,
                   " and output ", out_h, "x", out_w);
  }
}

}  // namespace effkernels
