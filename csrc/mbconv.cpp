// mbconv: the whole MBConv inference block (BN folded) as one op, so a block costs one
// Python call. This file: the CUDA block, four effkernels ops called through the dispatcher (the CPU
// has its own block kernels, cpu/mbconv_block.cpp):
//   expand  pointwise_conv(x, expand_w, expand_b, act)            (absent when expand ratio is 1)
//   dw      dwconv_bn_act(h, dw_w, dw_b, ..., act, se_sums=SE)    (SE squeeze fused in)
//   excite  se_excite(sums, 1/(out_h*out_w), se_*)                 -> fp32 [N, C_exp]
//   project pointwise_conv(h, proj_w, proj_b, none, scale, x if residual)  (SE scale fused in)
#include <torch/library.h>

#include "mbconv.h"
#include "op_handle.h"

namespace effkernels {

using at::Tensor;
using OptT = std::optional<Tensor>;

#ifdef EFFK_WITH_CUDA
namespace {

// The four ops on one batch (or batch chunk) x.
Tensor block(const Tensor& x, const OptT& expand_w, const OptT& expand_b, const Tensor& dw_w, const Tensor& dw_b,
             int64_t stride, int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, const OptT& se_w1,
             const OptT& se_b1, const OptT& se_w2, const OptT& se_b2, const Tensor& proj_w, const Tensor& proj_b,
             bool residual, int64_t activation, int64_t se_activation, int64_t se_gate) {
  static const auto pointwise =
      op_handle<Tensor(const Tensor&, const Tensor&, const Tensor&, int64_t, const OptT&, const OptT&)>("effkernels::pointwise_conv");
  static const auto dwconv = op_handle<std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t,
                                                                  int64_t, int64_t, int64_t, int64_t, bool)>("effkernels::dwconv_bn_act");
  static const auto excite = op_handle<Tensor(const Tensor&, double, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                              int64_t, int64_t)>("effkernels::se_excite");
  const bool has_se = se_w1.has_value();
  Tensor h = expand_w ? pointwise.call(x, *expand_w, *expand_b, activation, std::nullopt, std::nullopt) : x;
  auto [d, sums] = dwconv.call(h, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, activation, has_se);
  OptT scale;
  if (has_se) scale = excite.call(sums, 1.0 / static_cast<double>(out_h * out_w), *se_w1, *se_b1, *se_w2, *se_b2,
                                  se_activation, se_gate);
  return pointwise.call(d, proj_w, proj_b, static_cast<int64_t>(Act::None), scale, residual ? OptT(x) : OptT());
}

Tensor mbconv(const Tensor& x, const OptT& expand_w, const OptT& expand_b, const Tensor& dw_w, const Tensor& dw_b,
              int64_t stride, int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, const OptT& se_w1,
              const OptT& se_b1, const OptT& se_w2, const OptT& se_b2, const Tensor& proj_w, const Tensor& proj_b,
              bool residual, int64_t activation, int64_t se_activation, int64_t se_gate) {
  check_mbconv_args(x, expand_w, expand_b, se_w1, se_b1, se_w2, se_b2, proj_w.dim() == 2 ? proj_w.size(0) : -1,
                    residual, out_h, out_w);
  return block(x, expand_w, expand_b, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, se_w1, se_b1, se_w2,
               se_b2, proj_w, proj_b, residual, activation, se_activation, se_gate);
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("mbconv", &mbconv); }
#endif

}  // namespace effkernels
