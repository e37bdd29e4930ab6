// Device helpers shared by the CUDA kernels, with no torch headers (so a kernel header can be compiled on
// its own to read its SASS): activations, 16-byte vector loads and stores converted to fp32, cp.async,
// loads of scalars whose dtype is known only at run time.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "../act.h"

namespace effkernels::cuda {

// Elements per 16-byte vector: 4 fp32, 8 fp16/bf16.
template <typename T>
constexpr int kVec = 16 / sizeof(T);

// ---------------------------------------------------------------- activations

__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float rcp_approx(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float tanh_approx(float x) {
  float y;
  asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// sigmoid(x) = 1 / (1 + 2^(-x log2 e)): two MUFU ops (ex2, rcp), each within a few ulp, so the result
// meets the fp32 tolerance (tests/helpers.py: 1e-5 relative). x = -inf: rcp(inf) = 0; NaN stays NaN.
// kOneSfu: 0.5 + 0.5 tanh(x / 2) with one MUFU op (tanh.approx, max relative error 2^-10.99 per the PTX
// ISA: an absolute error <= 2.5e-4 on sigmoid), for fp16/bf16 outputs, whose own rounding is 2^-11 / 2^-8.
template <bool kOneSfu>
__device__ __forceinline__ float sigmoid_fast(float x) {
  if constexpr (kOneSfu) return fmaf(0.5f, tanh_approx(0.5f * x), 0.5f);
  else return rcp_approx(1.f + ex2_approx(-1.4426950408889634f * x));
}

// silu(x) = x sigmoid(x); the one-MUFU form is h + h tanh(h), h = x / 2 (3 instructions). Both give
// NaN at x = -inf, like torch's x / (1 + exp(-x)).
template <bool kOneSfu>
__device__ __forceinline__ float silu_fast(float x) {
  if constexpr (kOneSfu) {
    const float h = 0.5f * x;
    return fmaf(h, tanh_approx(h), h);
  } else {
    return x * sigmoid_fast<false>(x);
  }
}

template <int N, typename F>
__device__ __forceinline__ void each(float (&v)[N], F f) {
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = f(v[i]);
}

// v[0..n) = act(v[0..n)): one switch on the (uniform) code for the whole array.
template <bool kOneSfu = false, int N>
__device__ __forceinline__ void act_array(float (&v)[N], int act) {
  switch (act) {  // an int switch: the int64 enum compared 64-bit
    case static_cast<int>(Act::Relu): each(v, [](float x) { return fmaxf(x, 0.f); }); break;
    case static_cast<int>(Act::Relu6): each(v, [](float x) { return fminf(fmaxf(x, 0.f), 6.f); }); break;
    case static_cast<int>(Act::Silu): each(v, [](float x) { return silu_fast<kOneSfu>(x); }); break;
    case static_cast<int>(Act::Hardswish):
      each(v, [](float x) { return x * fminf(fmaxf(x + 3.f, 0.f), 6.f) * (1.f / 6.f); });
      break;
    case static_cast<int>(Act::Sigmoid): each(v, [](float x) { return sigmoid_fast<kOneSfu>(x); }); break;
    case static_cast<int>(Act::Hardsigmoid):
      each(v, [](float x) { return fminf(fmaxf(x + 3.f, 0.f), 6.f) * (1.f / 6.f); });
      break;
    default: break;
  }
}

// Scalar activation in fp32 (the CPU kernels' vector form: cpu/vec.h act_vec).
__device__ __forceinline__ float apply_act(float v, int act) {
  float a[1] = {v};
  act_array(a, act);
  return a[0];
}

// ---------------------------------------------------------------- vectors and conversions

template <typename T>
__device__ __forceinline__ float to_f32(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __half>) return __half2float(v);
  else return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_f32(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __half>) return __float2half_rn(v);
  else return __float2bfloat16_rn(v);
}

// The kVec<T> elements of a 16-byte word as fp32, and back (bit operations on the word's registers:
// going through a T array in memory made the compiler split 16-byte shared loads into 16-bit ones).
template <typename T>
__device__ __forceinline__ void unpack(const uint4& u, float (&v)[kVec<T>]) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<T, float>) {
      v[i] = __uint_as_float(w[i]);
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      v[2 * i] = __uint_as_float(w[i] << 16);
      v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    } else {
      __half2 h;
      memcpy(&h, &w[i], 4);
      const float2 f = __half22float2(h);
      v[2 * i] = f.x, v[2 * i + 1] = f.y;
    }
  }
}

template <typename T>
__device__ __forceinline__ uint4 pack(const float (&v)[kVec<T>]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<T, float>) {
      w[i] = __float_as_uint(v[i]);
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      const __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
      memcpy(&w[i], &h, 4);
    } else {
      const __half2 h = __floats2half2_rn(v[2 * i], v[2 * i + 1]);
      memcpy(&w[i], &h, 4);
    }
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// v = p[0..kVec<T>) as fp32; p 16-byte aligned, read through the read-only cache.
template <typename T>
__device__ __forceinline__ void load_vec(const T* __restrict__ p, float (&v)[kVec<T>]) {
  unpack<T>(__ldg(reinterpret_cast<const uint4*>(p)), v);
}

template <typename T>
__device__ __forceinline__ void store_vec(T* p, const float (&v)[kVec<T>]) {
  *reinterpret_cast<uint4*>(p) = pack<T>(v);
}

// The dtype of a tensor whose dtype the kernel does not template on (parameters: weights, biases).
enum class DType : int { F32 = 0, F16 = 1, BF16 = 2 };

__device__ __forceinline__ float load_as_f32(const void* p, int64_t i, DType t) {
  switch (t) {
    case DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void store_as(void* p, int64_t i, float v, DType t) {
  switch (t) {
    case DType::F16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case DType::BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(p)[i] = v;
  }
}

// ---------------------------------------------------------------- cp.async (sm_80+)

__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src) : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace effkernels::cuda
