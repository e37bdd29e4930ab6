// Host functions one CUDA source offers the others (csrc/cuda/mbconv.cu builds the MBConv block from
// them). Inputs are checked by the callers; every function runs on the current stream.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace effkernels::cuda {

// dwconv_bn_act.cu. x: dense channels_last. Returns (out, partial): out = act(dwconv(x') + bias) in
// channels_last, x' = x, or act(x + in_bias, in_act) when in_bias is given (applied once per input
// element as the kernel stages it); partial: fp32 [N, G, C] SE partial sums of out (undefined unless
// want_partials), G depending on the launch configuration.
std::tuple<at::Tensor, at::Tensor> dwconv_nhwc(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                               int64_t stride, int64_t pad_top, int64_t pad_left, int64_t out_h,
                                               int64_t out_w, int64_t activation,
                                               const std::optional<at::Tensor>& in_bias, int64_t in_activation,
                                               bool want_partials);

// channel_sums.cu: fp32 [N, C] sums of partials [N, G, C] (a view when G == 1, else one small kernel).
at::Tensor sum_partials(const at::Tensor& partial);

// se_excite.cu: the excite MLP on SE partial sums [N, G, C] (their sum over G is the squeeze).
// Without fold_w: returns the fp32 scale [N, C]. With fold_w ([C_out, C], the project conv's weight):
// returns W' [N, C_out, C] = fold_w * scale[n] in fold_dtype, the per-image project weights.
at::Tensor se_excite_partials(const at::Tensor& partial, double inv_hw, const at::Tensor& w1, const at::Tensor& b1,
                              const at::Tensor& w2, const at::Tensor& b2, int64_t activation, int64_t gate,
                              const std::optional<at::Tensor>& fold_w, at::ScalarType fold_dtype);

// pointwise_conv.cu: act(conv1x1(x) + bias) + residual, in x's memory format. x dense; w in x's dtype,
// [C_out, C_in], or [N, C_out, C_in] per image (a folded SE scale); one GEMM (cuBLAS) and one epilogue
// pass over the output.
at::Tensor pointwise_gemm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, int64_t activation,
                          const std::optional<at::Tensor>& residual);

// se_scale.cu: out = x * scale[n, c] (x dense; out may be x itself).
void se_scale_into(const at::Tensor& x, const at::Tensor& scale, at::Tensor& out);

}  // namespace effkernels::cuda
