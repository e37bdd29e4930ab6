// se_excite's argument checks, shared by its CPU and CUDA host code; the CPU MLP without them.
#pragma once

#include "common.h"

namespace effkernels {

inline void check_se_excite_args(const at::Tensor& sums, const at::Tensor& w1, const at::Tensor& b1,
                                 const at::Tensor& w2, const at::Tensor& b2, int64_t activation, int64_t gate) {
  EFFK_CHECK_ARG(sums.dim() == 2, "sums", "expected a 2-d tensor [N, C], got shape ", sums.sizes());
  EFFK_CHECK_ARG(sums.scalar_type() == at::kFloat, "sums", "expected dtype float32, got ", sums.scalar_type());
  const int64_t C = sums.size(1);
  EFFK_CHECK_ARG(w1.dim() == 2 && w1.size(1) == C && w1.size(0) >= 1, "w1",
                 "expected shape [S, ", C, "] (S >= 1, C = sums.shape[1]), got ", w1.sizes());
  const int64_t S = w1.size(0);
  check_param(w1, "w1", {S, C}, sums);
  check_param(b1, "b1", {S}, sums);
  check_param(w2, "w2", {C, S}, sums);
  check_param(b2, "b2", {C}, sums);
  check_act_code(activation, "activation");
  check_act_code(gate, "gate");
}

namespace cpu {
// The CPU kernel behind the op, for callers that have checked the same arguments (the CPU MBConv block).
at::Tensor se_excite_unchecked(const at::Tensor& sums, double inv_hw, const at::Tensor& w1, const at::Tensor& b1,
                               const at::Tensor& w2, const at::Tensor& b2, int64_t activation, int64_t gate);
}  // namespace cpu

}  // namespace effkernels
