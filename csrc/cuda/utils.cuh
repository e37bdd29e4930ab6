// Host and device helpers shared by the CUDA kernels (device.cuh holds the torch-free device part).
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <atomic>
#include <mutex>

#include "../common.h"
#include "device.cuh"

namespace effkernels::cuda {

// The CUDA type of an ATen scalar type (device.cuh's conversions take __half and __nv_bfloat16).
template <typename T>
struct CudaType {
  using type = T;
};
template <>
struct CudaType<at::Half> {
  using type = __half;
};
template <>
struct CudaType<at::BFloat16> {
  using type = __nv_bfloat16;
};

// The DType of a parameter tensor (check_param admits fp32, fp16 and bf16 only).
inline DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    default: return DType::F32;
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

// What the launch configurations need of a device, read once per device.
struct DeviceProps {
  int sms = 0;         // multiprocessors
  int smem_optin = 0;  // the most dynamic shared memory a block may opt into
};

inline const DeviceProps& device_props(int device) {
  constexpr int kMaxDevices = 64;
  TORCH_CHECK(device >= 0 && device < kMaxDevices, "effkernels: device index ", device, " out of range");
  static DeviceProps props[kMaxDevices];
  static std::once_flag once[kMaxDevices];
  std::call_once(once[device], [device] {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&props[device].sms, cudaDevAttrMultiProcessorCount, device));
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&props[device].smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  });
  return props[device];
}

// Lets Kernel launch with `bytes` of dynamic shared memory on `device` (needed above 48 KiB): one
// cudaFuncSetAttribute per kernel, device and new maximum, not one per call.
template <auto Kernel>
void allow_dynamic_smem(int device, int bytes) {
  static std::atomic<int> granted[64];
  if (bytes <= 48 * 1024 || bytes <= granted[device].load(std::memory_order_relaxed)) return;
  C10_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  granted[device].store(bytes, std::memory_order_relaxed);
}

// A parameter matrix [rows, cols] (or a vector, rows = 1) read in its own dtype through its strides:
// element (r, c) at p[r * s0 + c * s1].
struct ParamMat {
  const void* p;
  DType t;
  int64_t s0, s1;
  __device__ float at(int64_t r, int64_t c) const { return load_as_f32(p, r * s0 + c * s1, t); }
};

inline ParamMat param_mat(const at::Tensor& t) {
  return {t.const_data_ptr(), dtype_of(t), t.dim() == 2 ? t.stride(0) : 0, t.stride(t.dim() - 1)};
}

// The SE scale folded into a 1x1 conv's weight for image n: out[n, o, c] = w(o, c) * scale[c] in dtype
// out_t (out: [N, c_out, C]), by the block's threads.
__device__ inline void fold_image_weights(const ParamMat& w, const float* scale, void* out, DType out_t, int64_t n,
                                          int c_out, int C) {
  for (int o = 0; o < c_out; ++o)
    for (int c = threadIdx.x; c < C; c += blockDim.x) store_as(out, (n * c_out + o) * C + c, w.at(o, c) * scale[c], out_t);
}

// The SE-sum epilogue of the NHWC kernels, whose blocks are blockDim.x channel vectors x blockDim.y
// pixel rows (at most kMaxThreads threads): adds the threads' V per-channel partial sums over
// threadIdx.y through shared memory and writes them to dst_row[c0 + v] for v < nv (one row of the
// [N, G, C] partials: each slot written once, no atomics). Every thread of the block must call it.
template <int V, int kMaxThreads>
__device__ __forceinline__ void write_channel_sums(float (&sum)[V], float* dst_row, int c0, int nv) {
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
      if (v < nv) dst_row[c0 + v] = sum[v];
  }
}

// The SE-sum epilogue of the NCHW kernels, whose 1-D blocks (a multiple of 32 threads, at most
// kMaxThreads) each reduce part of one (n, c) plane: sums the threads' `sum` (warp shuffles, then shared
// memory) and writes it to *dst. Every thread must call it.
template <int kMaxThreads>
__device__ __forceinline__ void write_block_sum(float sum, float* dst) {
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, o);
  __shared__ float red[kMaxThreads / 32];
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < blockDim.x / 32; ++i) sum += red[i];
    *dst = sum;
  }
}

}  // namespace effkernels::cuda
