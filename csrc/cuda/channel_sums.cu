// fp32 [N, C] spatial sums of x on CUDA, in two launches: per-tile partial sums [N, tiles, C] (each
// slot written once: no zero-fill, no atomics), then their sum over the tiles (sum_partials, also used by
// dwconv_bn_act). NHWC: a thread owns a 16-byte channel vector over the pixels of a tile; NCHW: a block
// sums a tile of one (n, c) plane.
#include <torch/library.h>

#include "../channel_sums.h"
#include "ops.h"
#include "utils.cuh"

namespace effkernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPixelsPerThread = 16;

template <typename T>
__global__ void __launch_bounds__(kThreads) sums_nhwc_kernel(const T* __restrict__ x, float* __restrict__ partial,
                                                             int C, int HW, bool vec_ok, int tiles, int pix_per_tile) {
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
        if (v < nv) sum[v] += to_f32(px[v]);
    }
  }
  write_channel_sums<V, kThreads>(sum, partial + (static_cast<int64_t>(n) * tiles + tile) * C, c0, nv);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) sums_nchw_kernel(const T* __restrict__ x, float* __restrict__ partial,
                                                             int C, int HW, int tiles, int pix_per_tile) {
  const int64_t plane = blockIdx.x / tiles;
  const int tile = blockIdx.x % tiles, p_end = min(HW, (tile + 1) * pix_per_tile);
  const T* xp = x + plane * HW;
  float sum = 0.f;
  for (int p = tile * pix_per_tile + threadIdx.x; p < p_end; p += blockDim.x) sum += to_f32(xp[p]);
  write_block_sum<kThreads>(sum, partial + ((plane / C) * tiles + tile) * C + plane % C);
}

// sums[n, c] = sum over g of partial[n, g, c]: a thread per (n, c), coalesced over c.
__global__ void __launch_bounds__(kThreads) sum_partials_kernel(const float* __restrict__ partial,
                                                                float* __restrict__ sums, int64_t NC, int C, int G) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= NC) return;
  const float* src = partial + (i / C) * G * C + i % C;
  float s = 0.f;
  for (int g = 0; g < G; ++g) s += src[static_cast<int64_t>(g) * C];
  sums[i] = s;
}

at::Tensor channel_sums_cuda(const at::Tensor& x_in) {
  check_channel_sums_args(x_in);
  EFFK_CHECK_ARG(x_in.is_cuda(), "x", "expected a CUDA tensor, got one on ", x_in.device());
  EFFK_CHECK_ARG(x_in.size(2) * x_in.size(3) < (int64_t{1} << 31), "x", "expected H*W below 2^31");
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = dense_in_layout(x_in);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const auto f32opts = x.options().dtype(at::kFloat);
  if (x.numel() == 0) return at::zeros({N, C}, f32opts);  // H*W = 0 sums to zero; N*C = 0 is empty
  auto stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor partial;
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "channel_sums_cuda", [&] {
    using T = typename CudaType<scalar_t>::type;
    const T* xp = static_cast<const T*>(x.const_data_ptr());
    if (is_channels_last(x)) {
      constexpr int V = kVec<T>;
      const bool vec_ok = C % V == 0 && aligned16(xp);
      const int64_t groups = (C + V - 1) / V;
      const unsigned tx = std::min<unsigned>(32, next_pow2(groups)), ty = kThreads / tx;
      const int pix_per_tile = ty * kPixelsPerThread;
      const int tiles = static_cast<int>((HW + pix_per_tile - 1) / pix_per_tile);
      partial = at::empty({N, tiles, C}, f32opts);
      const dim3 grid(grid_x(N * tiles, "channel_sums"), static_cast<unsigned>((groups + tx - 1) / tx));
      sums_nhwc_kernel<T><<<grid, dim3(tx, ty), 0, stream>>>(xp, partial.mutable_data_ptr<float>(), C, HW, vec_ok,
                                                             tiles, pix_per_tile);
    } else {
      const int pix_per_tile = kThreads * kPixelsPerThread;
      const int tiles = static_cast<int>((HW + pix_per_tile - 1) / pix_per_tile);
      partial = at::empty({N, tiles, C}, f32opts);
      sums_nchw_kernel<T><<<grid_x(N * C * tiles, "channel_sums"), kThreads, 0, stream>>>(
          xp, partial.mutable_data_ptr<float>(), C, HW, tiles, pix_per_tile);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return sum_partials(partial);
}

}  // namespace

at::Tensor sum_partials(const at::Tensor& partial) {
  const int64_t N = partial.size(0), G = partial.size(1), C = partial.size(2);
  if (G == 1) return partial.view({N, C});
  at::Tensor sums = at::empty({N, C}, partial.options());
  if (sums.numel() == 0) return sums;
  sum_partials_kernel<<<grid_x((N * C + kThreads - 1) / kThreads, "sum_partials"), kThreads, 0,
                        c10::cuda::getCurrentCUDAStream()>>>(partial.const_data_ptr<float>(),
                                                              sums.mutable_data_ptr<float>(), N * C,
                                                              static_cast<int>(C), static_cast<int>(G));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return sums;
}

TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("channel_sums", &channel_sums_cuda); }

}  // namespace effkernels::cuda
