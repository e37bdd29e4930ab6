// 1x1 conv on the CPU: act(conv1x1(x * scale[n, c_in]) + bias) + residual.
// The GEMM is ATen's 1x1 convolution with the bias (oneDNN on x86 builds: it uses the widest vector ISA
// of the running CPU and beat at::mm over [N*H*W, C_in] row chunks by ~2x on B0's 1x1 shapes, AVX-512,
// measured). The SE scale is one pass over x before it (se_scale; scaling per-sample weights instead
// costs a oneDNN weight reorder per sample and measured slower). Activation and residual are one
// in-place elementwise pass after it, skipped when there is neither (the project conv without residual).
// Half dtypes: ATen's conv accumulates in fp32 with the bias rounded to x's dtype.
// fp32 calls oneDNN directly: at::conv2d's heuristic sends 1x1 convs to its native im2col path when
// torch runs one thread (batch < 16), or at batch 1 with N*C*H*W <= 20480 (B0's 7x7 expand and head
// convs). Measured: 20-25% slower than oneDNN on those small convs; B0 at batch 8 on one thread
// 88 ms with the heuristic, 60 ms without.
#include <torch/library.h>

#include "../op_handle.h"
#include "../pointwise_conv.h"
#include "vec.h"

namespace effkernels::cpu {
namespace {

at::Tensor pointwise_conv_cpu(const at::Tensor& x_in, const at::Tensor& weight, const at::Tensor& bias,
                              int64_t activation, const std::optional<at::Tensor>& scale,
                              const std::optional<at::Tensor>& residual) {
  static const auto se_scale = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&)>("effkernels::se_scale");
  check_pointwise_args(x_in, weight, bias, activation, scale, residual);
  EFFK_NO_AUTOCAST;
  // Inference kernel: ATen calls below must not record autograd (parameters may require grad).
  at::AutoDispatchBelowADInplaceOrView no_autograd;
  check_cpu_capability();
  const auto fmt = layout_of(x_in);
  const at::Tensor x = scale ? se_scale.call(x_in, *scale) : x_in;
  const auto dtype = x.scalar_type();
  const at::Tensor w = weight.to(dtype).contiguous().view({weight.size(0), weight.size(1), 1, 1});
  const at::Tensor b = bias.to(dtype).contiguous();
  // (at::mkldnn_convolution reads its operands as dense: a strided view would be read wrongly.)
  at::Tensor out = (dtype == at::kFloat && at::hasMKLDNN()
                        ? at::mkldnn_convolution(dense_in_layout(x), w, b, {0, 0}, {1, 1}, {1, 1}, 1)
                        : at::conv2d(x, w, b))
                       .contiguous(fmt);
  const int act = static_cast<int>(activation);
  if (act == static_cast<int>(Act::None) && !residual) return out;
  const at::Tensor res = residual ? residual->contiguous(fmt) : at::Tensor();
  EFFK_DISPATCH_FLOAT(dtype, "pointwise_conv_cpu", [&] {
    act_add_inplace<scalar_t>(out.mutable_data_ptr<scalar_t>(), res.defined() ? res.const_data_ptr<scalar_t>() : nullptr,
                              out.numel(), act);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CPU, m) { m.impl("pointwise_conv", &pointwise_conv_cpu); }

}  // namespace effkernels::cpu
