// at::vec helpers shared by the CPU kernels: fp32 vectors loaded from / stored to any kernel dtype.
// setup.py compiles x86-64 builds with AVX2+FMA and CPU_CAPABILITY=AVX2, so Vec is 8 x fp32 in a ymm
// register; elsewhere at::vec's portable implementation (still 8 lanes) is used.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include "../common.h"

namespace effkernels::cpu {

using Vec = at::vec::Vectorized<float>;
constexpr int kVec = Vec::size();

template <typename T>
inline Vec load_f(const T* p) {
  if constexpr (std::is_same_v<T, float>) {
    return Vec::loadu(p);
  } else {
    Vec out;
    at::vec::load_to_float<T>(p, out);
    return out;
  }
}

// First n (< kVec) lanes from p, the rest zero.
template <typename T>
inline Vec load_f(const T* p, int n) {
  if constexpr (std::is_same_v<T, float>) {
    return Vec::loadu(p, n);
  } else {
    T buf[kVec] = {};
    for (int i = 0; i < n; ++i) buf[i] = p[i];
    return load_f(buf);
  }
}

template <typename T>
inline void store_f(T* p, Vec v, int n = kVec) {
  if constexpr (std::is_same_v<T, float>) {
    v.store(p, n);
  } else {
    at::vec::convert_from_float<T>(v, v).store(p, n);
  }
}

// exp_u20 (inline polynomial, <= 20 ulp) instead of exp (a Sleef call that clobbers every vector
// register, so the depthwise weights held in registers would be reloaded after each pixel).
inline Vec act_vec(Vec v, int act) {
  const Vec zero(0.f), one(1.f), three(3.f), six(6.f), sixth(1.f / 6.f);
  switch (static_cast<Act>(act)) {
    case Act::Relu: return at::vec::maximum(v, zero);
    case Act::Relu6: return at::vec::minimum(at::vec::maximum(v, zero), six);
    case Act::Silu: return v / (one + v.neg().exp_u20());
    case Act::Hardswish: return v * at::vec::minimum(at::vec::maximum(v + three, zero), six) * sixth;
    case Act::Sigmoid: return one / (one + v.neg().exp_u20());
    case Act::Hardsigmoid: return at::vec::minimum(at::vec::maximum(v + three, zero), six) * sixth;
    default: return v;
  }
}

// The fp32 CPU kernels assume AVX2 when compiled for it; fail clearly instead of SIGILL elsewhere.
inline void check_cpu_capability() {
#if defined(CPU_CAPABILITY_AVX2) && (defined(__GNUC__) || defined(__clang__))
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  TORCH_CHECK(ok, "effkernels: the CPU kernels were built for AVX2+FMA, which this CPU lacks; rebuild with "
                  "EFFKERNELS_CPU_ARCH=generic");
#endif
}

}  // namespace effkernels::cpu
