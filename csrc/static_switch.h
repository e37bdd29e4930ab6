// Run-time kernel size and stride to compile-time constants, in one place for every depthwise kernel
// (csrc/cpu/dwconv_bn_act.cpp, csrc/cuda/dwconv_bn_act.cu); flash-attention's static_switch.h pattern.
// With k and stride constant, the input column of (output column i, tap kw) is a constant offset:
// overlapping taps share loads and the addressing folds away. Each (k, stride) pair is one instantiation
// per dtype, so the list stays short: the kernel sizes check_dwconv_args admits, strides 1 and 2.
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>
#include <type_traits>

namespace effkernels {

template <int V>
using IntC = std::integral_constant<int, V>;

// f(IntC<K>{}, IntC<S>{}) for k in {1, 3, 5, 7} and stride in {1, 2}; returns what f returns.
template <typename F>
decltype(auto) dw_static_switch(int64_t k, int64_t stride, F&& f) {
  TORCH_INTERNAL_ASSERT(stride == 1 || stride == 2, "dw_static_switch: stride ", stride);
  auto with_stride = [&](auto kc) -> decltype(auto) {
    if (stride == 1) return f(kc, IntC<1>{});
    return f(kc, IntC<2>{});
  };
  switch (k) {
    case 1: return with_stride(IntC<1>{});
    case 3: return with_stride(IntC<3>{});
    case 5: return with_stride(IntC<5>{});
    default: TORCH_INTERNAL_ASSERT(k == 7, "dw_static_switch: k ", k); return with_stride(IntC<7>{});
  }
}

}  // namespace effkernels
