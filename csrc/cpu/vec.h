// at::vec helpers shared by the CPU kernels: fp32 vectors loaded from / stored to any kernel dtype.
// setup.py compiles x86-64 builds for AVX-512 (Vec = 16 x fp32 in a zmm register) or AVX2+FMA (8 x fp32
// in a ymm register), per EFFKERNELS_CPU_ARCH; elsewhere at::vec's portable implementation is used.
// Kernels use kVec, never a literal width.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <cstring>
#include <ATen/cpu/vec/vec.h>

#include "../common.h"

// Hot-loop helpers and epilogue lambdas are forced inline: an out-of-line call clobbers every vector
// register (all are caller-saved on x86-64), so the weights and accumulators a kernel holds in registers
// were spilled and reloaded around each call. (A perf profile of a B0 forward, 2026-11-30, had act_vec at
// 9.5% self time, called through the PLT once per output vector.)
#if defined(__GNUC__) || defined(__clang__)
#define EFFK_INLINE inline __attribute__((always_inline))
#define EFFK_LAMBDA_INLINE __attribute__((always_inline))
#define EFFK_NOINLINE __attribute__((noinline))
#else
#define EFFK_INLINE inline
#define EFFK_LAMBDA_INLINE
#define EFFK_NOINLINE
#endif

namespace effkernels::cpu {

using Vec = at::vec::Vectorized<float>;
constexpr int kVec = Vec::size();

template <typename T>
EFFK_INLINE Vec load_f(const T* p) {
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
EFFK_INLINE Vec load_f(const T* p, int n) {
  if constexpr (std::is_same_v<T, float>) {
    return Vec::loadu(p, n);
  } else {
    T buf[kVec] = {};
    for (int i = 0; i < n; ++i) buf[i] = p[i];
    return load_f(buf);
  }
}

// The first n lanes of v to p, rounded to T.
template <typename T>
EFFK_INLINE void store_f(T* p, Vec v, int n = kVec) {
  if constexpr (std::is_same_v<T, float>) {
    v.store(p, n);
  } else {
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
    // One fp32 vector -> kVec 16-bit values in half a register. (Vectorized<BFloat16/Half> holds 2 * kVec
    // lanes, so storing kVec of them took its partial-store path through a buffer: it made bf16 SiLU
    // epilogues ~7x slower than fp32 ones.)
    const auto h = [&] {
      if constexpr (std::is_same_v<T, at::BFloat16>) return at::vec::cvtfp32_bf16(v);
      else return at::vec::cvtfp32_fp16(v);
    }();
    if (n == kVec) std::memcpy(p, &h, sizeof(h));  // constant size: one vector store
    else std::memcpy(p, &h, sizeof(T) * n);
#else
    at::vec::convert_from_float<T>(v, v).store(p, n);
#endif
  }
}

// dst[0, n) = src[0, n) as fp32.
template <typename T>
inline void to_f32(const T* src, int64_t n, float* dst) {
  if constexpr (std::is_same_v<T, float>) {
    std::memcpy(dst, src, n * sizeof(float));
  } else {
    int64_t i = 0;
    for (; i + kVec <= n; i += kVec) load_f(src + i).store(dst + i);
    if (i < n) load_f(src + i, static_cast<int>(n - i)).store(dst + i, static_cast<int>(n - i));
  }
}

// exp(-v), inline (a Sleef call would clobber every vector register, so the depthwise weights held in
// registers would be reloaded after each pixel). x86: 2^t with t = -v log2(e) clamped to [-126, 128] (t = 128
// gives exactly +inf, so silu(-inf) is NaN and silu(x < -88.7) is -0, as in torch),
// n = round(t) by the 1.5 * 2^23 trick (n lands in the low mantissa bits), 2^(t - n) by Cephes' exp2f
// polynomial on [-0.5, 0.5] (fp32 rounding-level error), 2^n added into the exponent bits: 12 floating-point
// operations, against 16 and a blend for v.neg().exp_u20(). SiLU runs on every expanded element twice (expand
// and depthwise epilogues): with ReLU in its place a B0 batch-1 forward took ~20% less time (2026-11-30, AVX2).
EFFK_INLINE Vec exp_neg(Vec v) {
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
  const Vec magic(12582912.f);  // 1.5 * 2^23
  // The raw min/max (at::vec::minimum/maximum add a NaN-propagating compare and or each): a NaN v gives t = 128,
  // and the caller's v / (1 + e) stays NaN.
  const Vec u = v * Vec(-1.44269504088896341f);
#if defined(CPU_CAPABILITY_AVX512)
  const Vec t = _mm512_max_ps(_mm512_min_ps(u, Vec(128.f)), Vec(-126.f));
#else
  const Vec t = _mm256_max_ps(_mm256_min_ps(u, Vec(128.f)), Vec(-126.f));
#endif
  const Vec nm = t + magic, f = t - (nm - magic);
  Vec p = at::vec::fmadd(Vec(1.535336188319500e-4f), f, Vec(1.339887440266574e-3f));
  p = at::vec::fmadd(p, f, Vec(9.618437357674640e-3f));
  p = at::vec::fmadd(p, f, Vec(5.550332471162809e-2f));
  p = at::vec::fmadd(p, f, Vec(2.402264791363012e-1f));
  p = at::vec::fmadd(p, f, Vec(6.931472028550421e-1f));
  p = at::vec::fmadd(p, f, Vec(1.f));
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), _mm512_slli_epi32(_mm512_castps_si512(nm), 23)));
#else
  return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_castps_si256(nm), 23)));
#endif
#else
  return v.neg().exp_u20();
#endif
}

EFFK_INLINE Vec act_vec(Vec v, int act) {
  const Vec zero(0.f), one(1.f), three(3.f), six(6.f), sixth(1.f / 6.f);
  switch (static_cast<Act>(act)) {
    case Act::Relu: return at::vec::maximum(v, zero);
    case Act::Relu6: return at::vec::minimum(at::vec::maximum(v, zero), six);
    case Act::Silu: return v / (one + exp_neg(v));
    case Act::Hardswish: return v * at::vec::minimum(at::vec::maximum(v + three, zero), six) * sixth;
    // exp_neg clamps its input, so NaN would come out as 0 or 1: keep it NaN, as torch.sigmoid does.
    case Act::Sigmoid: return Vec::blendv(one / (one + exp_neg(v)), v, v.isnan());
    case Act::Hardsigmoid: return at::vec::minimum(at::vec::maximum(v + three, zero), six) * sixth;
    default: return v;
  }
}

// o[i] = act(o[i]) (+ r[i] when r is given) over n elements, parallel in L2-sized pieces.
template <typename T>
void act_add_inplace(T* o, const T* r, int64_t n, int act) {
  at::parallel_for(0, n, 1 << 15, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i += kVec) {
      const int m = static_cast<int>(std::min<int64_t>(kVec, i1 - i));
      Vec v = act_vec(m == kVec ? load_f(o + i) : load_f(o + i, m), act);
      if (r) v = v + (m == kVec ? load_f(r + i) : load_f(r + i, m));
      store_f(o + i, v, m);
    }
  });
}

// The CPU kernels assume the ISA they were built for (setup.py EFFKERNELS_CPU_ARCH); fail clearly
// instead of SIGILL on a CPU without it.
inline void check_cpu_capability() {
#if defined(CPU_CAPABILITY_AVX512) && (defined(__GNUC__) || defined(__clang__))
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  TORCH_CHECK(ok, "effkernels: the CPU kernels were built for AVX-512, which this CPU lacks; rebuild with "
                  "EFFKERNELS_CPU_ARCH=avx2 (or generic)");
#elif defined(CPU_CAPABILITY_AVX2) && (defined(__GNUC__) || defined(__clang__))
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  TORCH_CHECK(ok, "effkernels: the CPU kernels were built for AVX2+FMA, which this CPU lacks; rebuild with "
                  "EFFKERNELS_CPU_ARCH=generic");
#endif
}

}  // namespace effkernels::cpu
