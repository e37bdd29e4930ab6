// Shared by every effkernels C++/CUDA kernel: activation codes, layouts and argument checks.
#pragma once

#include <ATen/Dispatch.h>
#include <torch/types.h>

#include <c10/core/impl/LocalDispatchKeySet.h>

// For kernels that call ATen math (at::mm, at::addmm): a custom op reaches its kernel through
// autocast's fallthrough with the autocast keys still active, so inside torch.autocast those calls
// would be recast to half precision. The kernels choose their own dtypes.
#define EFFK_NO_AUTOCAST c10::impl::ExcludeDispatchKeyGuard effk_no_autocast_(c10::autocast_dispatch_keyset)

namespace effkernels {

// Keep in sync with effkernels/_common.py ACTIVATIONS.
enum class Act : int64_t { None = 0, Relu = 1, Relu6 = 2, Silu = 3, Hardswish = 4, Sigmoid = 5, Hardsigmoid = 6 };

// TORCH_CHECK with a message that names the argument, the way the Python layer words it.
#define EFFK_CHECK_ARG(cond, arg, ...) TORCH_CHECK(cond, arg, ": ", __VA_ARGS__)

// Dispatch over the kernel dtypes only (no double: fewer instantiations).
#define EFFK_DISPATCH_FLOAT(TYPE, NAME, ...)                                             \
  AT_DISPATCH_SWITCH(TYPE, NAME, AT_DISPATCH_CASE(at::kFloat, __VA_ARGS__)               \
                         AT_DISPATCH_CASE(at::kHalf, __VA_ARGS__) AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__))

// NHWC in memory (C innermost), decided by strides like effkernels._common.is_channels_last.
inline bool is_channels_last(const at::Tensor& x) { return x.dim() == 4 && x.size(1) > 1 && x.stride(1) == 1; }

inline at::MemoryFormat layout_of(const at::Tensor& x) {
  return is_channels_last(x) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

// Kernels index dense NCHW or NHWC memory: other strides (views) are copied into x's format.
inline at::Tensor dense_in_layout(const at::Tensor& x) { return x.contiguous(layout_of(x)); }

inline at::Tensor empty_in_layout(const at::Tensor& x, at::IntArrayRef sizes) {
  return at::empty(sizes, x.options().memory_format(layout_of(x)));
}

// t in x's memory format (t itself when it is already; .contiguous(format) would keep the strides of an
// empty t, which every format calls contiguous).
inline at::Tensor in_layout_of(const at::Tensor& t, const at::Tensor& x) {
  if (is_channels_last(t) == is_channels_last(x)) return t;
  return at::empty(t.sizes(), t.options().memory_format(layout_of(x))).copy_(t);
}

inline const char* expected_float = "expected dtype float32, float16 or bfloat16";

inline bool is_float(const at::Tensor& t) {
  auto s = t.scalar_type();
  return s == at::kFloat || s == at::kHalf || s == at::kBFloat16;
}

// A 4-d activation tensor of a supported dtype.
inline void check_activation_tensor(const at::Tensor& x, const char* name) {
  EFFK_CHECK_ARG(x.dim() == 4, name, "expected a 4-d tensor [N, C, H, W], got shape ", x.sizes());
  EFFK_CHECK_ARG(is_float(x), name, expected_float, ", got ", x.scalar_type());
}

// A parameter tensor of exactly `shape`, a float dtype, on x's device.
inline void check_param(const at::Tensor& t, const char* name, at::IntArrayRef shape, const at::Tensor& x) {
  EFFK_CHECK_ARG(t.sizes() == shape, name, "expected shape ", shape, ", got ", t.sizes());
  EFFK_CHECK_ARG(is_float(t), name, expected_float, ", got ", t.scalar_type());
  EFFK_CHECK_ARG(t.device() == x.device(), name, "expected a tensor on ", x.device(), " (x's device), got one on ",
                 t.device());
}

inline void check_act_code(int64_t act, const char* name) {
  EFFK_CHECK_ARG(act >= 0 && act <= 6, name, "expected an activation code 0..6 (effkernels._common.ACTIVATIONS), got ",
                 act);
}

// Shared by the CPU and CUDA dwconv_bn_act: returns k.
inline int64_t check_dwconv_args(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t stride,
                                 int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, int64_t activation) {
  check_activation_tensor(x, "x");
  const int64_t C = x.size(1);
  EFFK_CHECK_ARG(weight.dim() == 4 && weight.size(0) == C && weight.size(1) == 1 && weight.size(2) == weight.size(3),
                 "weight", "expected shape [", C, ", 1, k, k] (depthwise, C = x.shape[1]), got ", weight.sizes());
  const int64_t k = weight.size(2);
  EFFK_CHECK_ARG(k % 2 == 1 && k <= 7, "weight", "expected an odd kernel size k <= 7, got k = ", k);
  check_param(weight, "weight", weight.sizes(), x);
  check_param(bias, "bias", {C}, x);
  EFFK_CHECK_ARG(stride == 1 || stride == 2, "stride", "expected 1 or 2, got ", stride);
  EFFK_CHECK_ARG(pad_top >= 0 && pad_left >= 0, "padding", "expected non-negative pad_top, pad_left, got ", pad_top,
                 ", ", pad_left);
  EFFK_CHECK_ARG(out_h >= 1 && out_w >= 1, "out_h/out_w", "expected a positive output size, got ", out_h, "x", out_w);
  check_act_code(activation, "activation");
  return k;
}

inline void check_channel_sums_arg(const at::Tensor& x) { check_activation_tensor(x, "x"); }

// scale: fp32 [N, C] on x's device.
inline void check_scale(const at::Tensor& scale, const at::Tensor& x, int64_t C, const char* name = "scale") {
  EFFK_CHECK_ARG(scale.dim() == 2 && scale.size(0) == x.size(0) && scale.size(1) == C, name, "expected shape [",
                 x.size(0), ", ", C, "] ([N, C] of x), got ", scale.sizes());
  EFFK_CHECK_ARG(scale.scalar_type() == at::kFloat, name, "expected dtype float32, got ", scale.scalar_type());
  EFFK_CHECK_ARG(scale.device() == x.device(), name, "expected a tensor on ", x.device(), " (x's device), got one on ",
                 scale.device());
}

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

inline void check_pointwise_args(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                 int64_t activation, const std::optional<at::Tensor>& scale,
                                 const std::optional<at::Tensor>& residual) {
  check_activation_tensor(x, "x");
  const int64_t Cin = x.size(1);
  EFFK_CHECK_ARG(weight.dim() == 2 && weight.size(1) == Cin, "weight",
                 "expected shape [C_out, ", Cin, "] (C_in = x.shape[1]), got ", weight.sizes());
  const int64_t Cout = weight.size(0);
  check_param(weight, "weight", weight.sizes(), x);
  check_param(bias, "bias", {Cout}, x);
  check_act_code(activation, "activation");
  if (scale) check_scale(*scale, x, Cin);
  if (residual) {
    const at::Tensor& r = *residual;
    EFFK_CHECK_ARG(r.dim() == 4 && r.size(0) == x.size(0) && r.size(1) == Cout && r.size(2) == x.size(2) &&
                       r.size(3) == x.size(3),
                   "residual", "expected shape [", x.size(0), ", ", Cout, ", ", x.size(2), ", ", x.size(3),
                   "] (the output's), got ", r.sizes());
    EFFK_CHECK_ARG(r.scalar_type() == x.scalar_type(), "residual", "expected x's dtype ", x.scalar_type(), ", got ",
                   r.scalar_type());
    EFFK_CHECK_ARG(r.device() == x.device(), "residual", "expected a tensor on ", x.device(), ", got one on ",
                   r.device());
  }
}

// fp32 copies of small parameters (no copy when already fp32 and contiguous).
inline at::Tensor f32(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

}  // namespace effkernels
