// mbconv_forward: the whole MBConv inference block (BN folded) as one op, so a block costs one
// Python call. One implementation for every device: it calls the effkernels ops through the
// dispatcher, which picks the CPU or CUDA kernels of x's device.
//   expand  pointwise_conv(x, expand_w, expand_b, act)            (absent when expand ratio is 1)
//   dw      dwconv_bn_act(h, dw_w, dw_b, ..., act, se_sums=SE)    (SE squeeze fused in)
//   excite  se_excite(sums, 1/(out_h*out_w), se_*)                 -> fp32 [N, C_exp]
//   project pointwise_conv(h, proj_w, proj_b, none, scale, x if residual)  (SE scale fused in)
#include <torch/library.h>

#include "mbconv.h"
#include "op_handle.h"

namespace effkernels {
namespace {

using at::Tensor;
using OptT = std::optional<Tensor>;

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

// CPU: bytes of expanded activations (the C_exp-wide tensors between expand and project) per batch
// chunk. The block runs chunk by chunk so those tensors stay in the last-level cache instead of making
// round trips to DRAM (and fresh page faults for allocations past malloc's mmap threshold). Measured on
// a 2-core Zen 5 (1 MiB L2 per core, 32 MiB L3), B0 batch 8, fp32: 2-8 MiB chunks 36 ms, one sample
// per chunk 48 ms, the whole batch at once 63 ms (min of 18 runs each).
constexpr int64_t kCpuChunkBytes = 4 << 20;

Tensor mbconv_forward(const Tensor& x, const OptT& expand_w, const OptT& expand_b, const Tensor& dw_w,
                      const Tensor& dw_b, int64_t stride, int64_t pad_top, int64_t pad_left, int64_t out_h,
                      int64_t out_w, const OptT& se_w1, const OptT& se_b1, const OptT& se_w2, const OptT& se_b2,
                      const Tensor& proj_w, const Tensor& proj_b, bool residual, int64_t activation,
                      int64_t se_activation, int64_t se_gate) {
  check_mbconv_args(x, expand_w, expand_b, se_w1, se_b1, se_w2, se_b2, proj_w, residual, out_h, out_w);

  // The CPU kernels are NHWC: an NCHW x runs the block in channels_last, and the result is written back
  // in x's layout (two passes over the narrow tensors instead of two per op over the expanded ones).
  const Tensor xin = x.is_cpu() ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
  int64_t chunk = x.size(0);
  if (x.is_cpu() && x.size(0) > 1) {
    const int64_t c_exp = dw_w.size(0);
    const int64_t per_sample = c_exp * std::max(x.size(2) * x.size(3), out_h * out_w) * x.element_size();
    chunk = std::clamp<int64_t>(kCpuChunkBytes / std::max<int64_t>(per_sample, 1), 1, x.size(0));
    const int64_t chunks = (x.size(0) + chunk - 1) / chunk;
    chunk = (x.size(0) + chunks - 1) / chunks;  // as even as possible: 8 samples in 4 + 4, not 7 + 1
  }
  auto run = [&](const Tensor& xs) {
    return block(xs, expand_w, expand_b, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, se_w1, se_b1, se_w2,
                 se_b2, proj_w, proj_b, residual, activation, se_activation, se_gate);
  };
  if (chunk >= x.size(0)) return in_layout_of(run(xin), x);
  const Tensor first = run(xin.narrow(0, 0, chunk));
  Tensor out = at::empty({x.size(0), first.size(1), first.size(2), first.size(3)},
                         first.options().memory_format(layout_of(x)));
  out.narrow(0, 0, chunk).copy_(first);
  for (int64_t n0 = chunk; n0 < x.size(0); n0 += chunk) {
    const int64_t n = std::min(chunk, x.size(0) - n0);
    out.narrow(0, n0, n).copy_(run(xin.narrow(0, n0, n)));
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CPU, m) { m.impl("mbconv_forward", &mbconv_forward); }
#ifdef EFFK_WITH_CUDA
TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("mbconv_forward", &mbconv_forward); }
#endif

}  // namespace effkernels
