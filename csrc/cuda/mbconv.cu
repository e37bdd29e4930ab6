// mbconv on CUDA: the MBConv inference block (BN folded) from library GEMMs and the depthwise
// kernel (../shared/docs/GPU-REVIEW.md section 6), with nothing C_exp-wide written twice:
//   expand   at::mm (cuBLAS) writes the expand conv's raw output h = x W_e^T, no bias, no activation;
//   dw       the depthwise kernel applies act(h + b_e) to each element of h once, as it stages it in
//            shared memory, then conv + bias + activation, and writes per-block SE partial sums;
//   excite   one kernel: the SE MLP on the partials, and where out_h*out_w >= C_out the per-image
//            project weights W'[n] = W_p * scale[n] (else the scale, applied in place by se_scale);
//   project  a (batched) GEMM with W' or W_p, then bias + residual in one pass over the narrow output.
// The block runs channels_last; an NCHW x is converted once on the way in and the result on the way
// out (passes over the narrow tensors only).
#include <torch/library.h>

#include "../dwconv_bn_act.h"
#include "../mbconv.h"
#include "../pointwise_conv.h"
#include "../se_excite.h"
#include "ops.h"
#include "utils.cuh"

namespace effkernels::cuda {
namespace {

using OptT = std::optional<at::Tensor>;

at::Tensor mbconv_cuda(const at::Tensor& x, const OptT& expand_w, const OptT& expand_b, const at::Tensor& dw_w,
                               const at::Tensor& dw_b, int64_t stride, int64_t pad_top, int64_t pad_left,
                               int64_t out_h, int64_t out_w, const OptT& se_w1, const OptT& se_b1, const OptT& se_w2,
                               const OptT& se_b2, const at::Tensor& proj_w, const at::Tensor& proj_b, bool residual,
                               int64_t activation, int64_t se_activation, int64_t se_gate) {
  check_mbconv_args(x, expand_w, expand_b, se_w1, se_b1, se_w2, se_b2, proj_w.dim() == 2 ? proj_w.size(0) : -1,
                    residual, out_h, out_w);
  EFFK_CHECK_ARG(x.is_cuda(), "x", "expected a CUDA tensor, got one on ", x.device());
  EFFK_NO_AUTOCAST;
  at::AutoDispatchBelowADInplaceOrView no_autograd;
  c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xin = x.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3);
  const auto dtype = x.scalar_type();

  at::Tensor h = xin;  // the depthwise input: x, or the expand conv's output before its bias and activation
  if (expand_w) {
    check_pointwise_args(xin, *expand_w, *expand_b, activation, std::nullopt, std::nullopt);
    const int64_t c_in = x.size(1), c_exp = expand_w->size(0);
    h = at::empty({N, c_exp, H, W}, xin.options().memory_format(at::MemoryFormat::ChannelsLast));
    if (h.numel() > 0) {
      at::Tensor h2d = h.permute({0, 2, 3, 1}).view({N * H * W, c_exp});
      at::mm_out(h2d, xin.permute({0, 2, 3, 1}).view({N * H * W, c_in}), expand_w->to(dtype).t());
    }
  }
  check_dwconv_args(h, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, activation);
  EFFK_CHECK_ARG(H * W < (int64_t{1} << 31) && out_h * out_w < (int64_t{1} << 31), "x",
                 "expected H*W and out_h*out_w below 2^31");
  const bool has_se = se_w1.has_value();
  auto [d, partial] = dwconv_nhwc(h, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, activation,
                                  expand_w ? expand_b : std::nullopt, activation, has_se);

  const OptT res = residual ? OptT(xin) : OptT();
  check_pointwise_args(d, proj_w, proj_b, static_cast<int64_t>(Act::None), std::nullopt, res);
  const bool fold = has_se && out_h * out_w >= proj_w.size(0);
  at::Tensor w = fold ? at::Tensor() : proj_w.to(dtype);
  if (has_se) {
    check_se_excite_args(partial.select(1, 0), *se_w1, *se_b1, *se_w2, *se_b2, se_activation, se_gate);
    const double inv_hw = 1.0 / static_cast<double>(out_h * out_w);
    if (fold) {
      w = se_excite_partials(partial, inv_hw, *se_w1, *se_b1, *se_w2, *se_b2, se_activation, se_gate, proj_w, dtype);
    } else {
      const at::Tensor scale = se_excite_partials(partial, inv_hw, *se_w1, *se_b1, *se_w2, *se_b2, se_activation,
                                                  se_gate, std::nullopt, at::kFloat);
      se_scale_into(d, scale, d);
    }
  }
  return in_layout_of(pointwise_gemm(d, w, proj_b, static_cast<int64_t>(Act::None), res), x);
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("mbconv", &mbconv_cuda); }

}  // namespace effkernels::cuda
