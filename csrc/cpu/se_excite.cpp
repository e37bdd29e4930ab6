// SE excite MLP on the CPU: gate(w2 @ act(w1 @ (sums * inv_hw) + b1) + b2), fp32 [N, C].
// Two small fp32 GEMMs through ATen and in-place activations: the work is N x C x S, tiny.
#include <torch/library.h>

#include "../se_excite.h"
#include "vec.h"

namespace effkernels::cpu {
namespace {

void act_inplace(at::Tensor& t, int act) { act_add_inplace<float>(t.mutable_data_ptr<float>(), nullptr, t.numel(), act); }

at::Tensor se_excite_cpu(const at::Tensor& sums, double inv_hw, const at::Tensor& w1, const at::Tensor& b1,
                         const at::Tensor& w2, const at::Tensor& b2, int64_t activation, int64_t gate) {
  check_se_excite_args(sums, w1, b1, w2, b2, activation, gate);
  EFFK_NO_AUTOCAST;
  check_cpu_capability();
  at::Tensor hidden = at::addmm(f32(b1), sums.contiguous(), f32(w1).t(), 1.0, inv_hw);
  act_inplace(hidden, static_cast<int>(activation));
  at::Tensor out = at::addmm(f32(b2), hidden, f32(w2).t());
  act_inplace(out, static_cast<int>(gate));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CPU, m) { m.impl("se_excite", &se_excite_cpu); }

}  // namespace effkernels::cpu
