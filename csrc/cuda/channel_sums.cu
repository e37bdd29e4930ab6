// fp32 [N, C] spatial sums of x on CUDA. NHWC: a thread owns a 16-byte channel vector over the
// pixels of a tile; NCHW: a block sums a tile of one (n, c) plane. Shared-memory / warp
// reductions, one atomicAdd per (block, channel).
#include <torch/library.h>

#include "../channel_sums.h"
#include "utils.cuh"

namespace effkernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPixelsPerThread = 16;

template <typename T>
__global__ void __launch_bounds__(kThreads) sums_nhwc_kernel(const T* __restrict__ x, float* __restrict__ sums, int C,
                                                             int HW, bool vec_ok, int tiles, int pix_per_tile) {
  constexpr int V = kVec<T>;
  const int n = blockIdx.x / tiles, tile = blockIdx.x % tiles;
  const int c0 = (blockIdx.y * blockDim.x + threadIdx.x) * V;
  const int nv = min(V, C - c0);
  const int p_end = min(HW, (tile + 1) * pix_per_tile);
  float sum[V];
#pragma unroll
  for (int v = 0; v < V; ++v) sum[v] = 0.f;
  for (int p = tile * pix_per_tile + threadIdx.y; nv > 0 && p < p_end; p += blockDim.y) {
    const T* px = x + (static_cast<int64_t>(n) * HW + p) * C + c0;
    if (vec_ok) {
      float xv[V];
      load_vec(px, xv);
#pragma unroll
      for (int v = 0; v < V; ++v) sum[v] += xv[v];
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v)
        if (v < nv) sum[v] += static_cast<float>(px[v]);
    }
  }
  add_channel_sums<V, kThreads>(sum, sums + static_cast<int64_t>(n) * C, c0, nv);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) sums_nchw_kernel(const T* __restrict__ x, float* __restrict__ sums, int HW,
                                                             int tiles, int pix_per_tile) {
  const int64_t plane = blockIdx.x / tiles;
  const int tile = blockIdx.x % tiles, p_end = min(HW, (tile + 1) * pix_per_tile);
  const T* xp = x + plane * HW;
  float sum = 0.f;
  for (int p = tile * pix_per_tile + threadIdx.x; p < p_end; p += blockDim.x) sum += static_cast<float>(xp[p]);
  add_block_sum<kThreads>(sum, sums + plane);
}

at::Tensor channel_sums_cuda(const at::Tensor& x_in) {
  check_channel_sums_args(x_in);
  EFFK_CHECK_ARG(x_in.is_cuda(), "x", "expected a CUDA tensor, got one on ", x_in.device());
  EFFK_CHECK_ARG(x_in.size(2) * x_in.size(3) < (int64_t{1} << 31), "x", "expected H*W below 2^31");
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = dense_in_layout(x_in);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  at::Tensor sums = at::zeros({N, C}, x.options().dtype(at::kFloat));
  if (x.numel() == 0) return sums;
  auto stream = c10::cuda::getCurrentCUDAStream();
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "channel_sums_cuda", [&] {
    if (is_channels_last(x)) {
      constexpr int V = kVec<scalar_t>;
      const bool vec_ok = C % V == 0 && aligned16(x.const_data_ptr());
      const int64_t groups = (C + V - 1) / V;
      const unsigned tx = std::min<unsigned>(32, next_pow2(groups)), ty = kThreads / tx;
      const int pix_per_tile = ty * kPixelsPerThread;
      const int tiles = static_cast<int>((HW + pix_per_tile - 1) / pix_per_tile);
      const dim3 grid(grid_x(N * tiles, "channel_sums"), static_cast<unsigned>((groups + tx - 1) / tx));
      sums_nhwc_kernel<scalar_t><<<grid, dim3(tx, ty), 0, stream>>>(x.const_data_ptr<scalar_t>(),
                                                                    sums.mutable_data_ptr<float>(), C, HW, vec_ok,
                                                                    tiles, pix_per_tile);
    } else {
      const int pix_per_tile = kThreads * kPixelsPerThread;
      const int tiles = static_cast<int>((HW + pix_per_tile - 1) / pix_per_tile);
      sums_nchw_kernel<scalar_t><<<grid_x(N * C * tiles, "channel_sums"), kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), sums.mutable_data_ptr<float>(), HW, tiles, pix_per_tile);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return sums;
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("channel_sums", &channel_sums_cuda); }

}  // namespace effkernels::cuda
