// Helpers shared by the CUDA kernels: 16-byte vector loads/stores converted to fp32, launch checks.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../common.h"

namespace effkernels::cuda {

// Scalar activation in fp32; `act` is an Act code (the CPU kernels' vector form: cpu/vec.h act_vec).
__device__ __forceinline__ float apply_act(float v, int act) {
  switch (static_cast<Act>(act)) {
    case Act::Relu: return v > 0.f ? v : 0.f;
    case Act::Relu6: return fminf(fmaxf(v, 0.f), 6.f);
    case Act::Silu: return v / (1.f + expf(-v));
    case Act::Hardswish: return v * fminf(fmaxf(v + 3.f, 0.f), 6.f) * (1.f / 6.f);
    case Act::Sigmoid: return 1.f / (1.f + expf(-v));
    case Act::Hardsigmoid: return fminf(fmaxf(v + 3.f, 0.f), 6.f) * (1.f / 6.f);
    default: return v;
  }
}

// Elements per 16-byte vector: 4 fp32, 8 fp16/bf16.
template <typename T>
constexpr int kVec = 16 / sizeof(T);

// v[0..kVec<T>) = p[0..kVec<T>) as fp32; p 16-byte aligned.
template <typename T>
__device__ __forceinline__ void load_vec(const T* __restrict__ p, float* v) {
  alignas(16) T tmp[kVec<T>];
  *reinterpret_cast<uint4*>(tmp) = __ldg(reinterpret_cast<const uint4*>(p));
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) v[i] = static_cast<float>(tmp[i]);
}

template <typename T>
__device__ __forceinline__ void store_vec(T* p, const float* v) {
  alignas(16) T tmp[kVec<T>];
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) tmp[i] = static_cast<T>(v[i]);
  *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(tmp);
}

// The SE-sum epilogue of the NHWC kernels, whose blocks are blockDim.x channel vectors x blockDim.y
// pixel rows (at most kMaxThreads threads): adds the threads' V per-channel partial sums over
// threadIdx.y through shared memory, then makes one atomicAdd per channel into sums_row[c0 + v]
// for v < nv. It synchronizes: every thread of the block must call it.
template <int V, int kMaxThreads>
__device__ __forceinline__ void add_channel_sums(float (&sum)[V], float* sums_row, int c0, int nv) {
  __shared__ float red[kMaxThreads * V];
  const int lane = threadIdx.x * V;
#pragma unroll
  for (int v = 0; v < V; ++v) red[threadIdx.y * blockDim.x * V + lane + v] = sum[v];
  __syncthreads();
  if (threadIdx.y == 0 && nv > 0) {
    for (int y = 1; y < blockDim.y; ++y)
#pragma unroll
      for (int v = 0; v < V; ++v) sum[v] += red[y * blockDim.x * V + lane + v];
#pragma unroll
    for (int v = 0; v < V; ++v)
      if (v < nv) atomicAdd(sums_row + c0 + v, sum[v]);
  }
}

// The SE-sum epilogue of the NCHW kernels, whose 1-D blocks (a multiple of 32 threads, at most
// kMaxThreads) each reduce part of one (n, c) plane: sums the threads' `sum` (warp shuffles, then
// shared memory) and makes one atomicAdd into *dst. It synchronizes: every thread must call it.
template <int kMaxThreads>
__device__ __forceinline__ void add_block_sum(float sum, float* dst) {
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, o);
  __shared__ float red[kMaxThreads / 32];
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < blockDim.x / 32; ++i) sum += red[i];
    atomicAdd(dst, sum);
  }
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

inline unsigned next_pow2(int64_t v) {
  unsigned p = 1;
  while (p < v) p <<= 1;
  return p;
}

// Grid x is limited to 2^31 - 1 blocks.
inline unsigned grid_x(int64_t blocks, const char* what) {
  TORCH_CHECK(blocks <= 0x7fffffff, what, ": the input is too large for one launch (", blocks, " blocks)");
  return static_cast<unsigned>(blocks);
}

}  // namespace effkernels::cuda
