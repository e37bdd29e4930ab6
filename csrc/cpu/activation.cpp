// activation_: an activation in place over a dense CPU tensor, with the block kernels' vector code
// (act_add_inplace: at::vec, exp_neg, parallel in L2-sized pieces). ops.conv_bn_act leaves dense k x k convs with
// many input channels (Fused-MBConv expand convs) to ATen and activates the conv's output with it: ATen's silu_ took
// ~1 ns per element there, whatever the thread count (B0's stem output at 224 px, 0.4 M elements:
// 0.29-0.46 ms, 2026-11-30, 2-core AMD EPYC).
#include <torch/library.h>

#include "vec.h"

namespace effkernels::cpu {
namespace {

void activation_cpu(at::Tensor& x, int64_t activation) {
  EFFK_CHECK_ARG(is_float(x), "x", expected_float, ", got ", x.scalar_type());
  EFFK_CHECK_ARG(x.is_non_overlapping_and_dense(), "x",
                 "expected a dense tensor (a view with gaps or overlaps cannot be written in place as one "
                 "run of elements), got shape ", x.sizes(), " and strides ", x.strides());
  check_act_code(activation, "activation");
  check_cpu_capability();
  if (x.numel() == 0 || activation == static_cast<int64_t>(Act::None)) return;
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "activation_cpu", [&] {
    act_add_inplace<scalar_t>(x.mutable_data_ptr<scalar_t>(), nullptr, x.numel(), static_cast<int>(activation));
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CPU, m) { m.impl("activation_", &activation_cpu); }

}  // namespace effkernels::cpu
