// Shared by every effkernels C++/CUDA kernel: activation codes, layouts and the argument checks common to
// several ops. Each op's own checks live in csrc/<op>.h, included by its CPU and CUDA host code.
#pragma once

#include <ATen/Dispatch.h>
#include <torch/types.h>

#include <c10/core/impl/LocalDispatchKeySet.h>

#include "act.h"

// For kernels that call ATen math (at::mm, at::addmm): a custom op reaches its kernel through
// autocast's fallthrough with the autocast keys still active, so inside torch.autocast those calls
// would be recast to half precision. The kernels choose their own dtypes.
#define EFFK_NO_AUTOCAST c10::impl::ExcludeDispatchKeyGuard effk_no_autocast_(c10::autocast_dispatch_keyset)

namespace effkernels {

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

// scale: fp32 [N, C] on x's device (se_scale's scale, pointwise_conv's SE scale).
inline void check_scale(const at::Tensor& scale, const at::Tensor& x, int64_t C, const char* name = "scale") {
  EFFK_CHECK_ARG(scale.dim() == 2 && scale.size(0) == x.size(0) && scale.size(1) == C, name, "expected shape [",
                 x.size(0), ", ", C, "] ([N, C] of x), got ", scale.sizes());
  EFFK_CHECK_ARG(scale.scalar_type() == at::kFloat, name, "expected dtype float32, got ", scale.scalar_type());
  EFFK_CHECK_ARG(scale.device() == x.device(), name, "expected a tensor on ", x.device(), " (x's device), got one on ",
                 scale.device());
}

// fp32 copies of small parameters (no copy when already fp32 and contiguous).
inline at::Tensor f32(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

}  // namespace effkernels
