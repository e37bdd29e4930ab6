// SE excite MLP on CUDA: gate(w2 @ act(w1 @ (sums * inv_hw) + b1) + b2) -> fp32 [N, C].
// One launch for all N: a block per sample; the mean [C] and hidden [S] vectors live in shared
// memory; a warp per hidden unit (shuffle-reduced dot over C), then a thread per output channel.
#include <torch/library.h>

#include "../se_excite.h"
#include "utils.cuh"

namespace effkernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) se_excite_kernel(const float* __restrict__ sums, float inv_hw,
                                                             const float* __restrict__ w1, const float* __restrict__ b1,
                                                             const float* __restrict__ w2, const float* __restrict__ b2,
                                                             float* __restrict__ out, int C, int S, int act, int gate) {
  extern __shared__ float smem[];
  float* mean = smem;       // [C]
  float* hidden = smem + C; // [S]
  const int64_t n = blockIdx.x;
  for (int c = threadIdx.x; c < C; c += blockDim.x) mean[c] = sums[n * C + c] * inv_hw;
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int s = warp; s < S; s += warps) {
    float d = 0.f;
    for (int c = lane; c < C; c += 32) d = fmaf(__ldg(w1 + static_cast<int64_t>(s) * C + c), mean[c], d);
    for (int o = 16; o > 0; o >>= 1) d += __shfl_down_sync(0xffffffffu, d, o);
    if (lane == 0) hidden[s] = apply_act(d + b1[s], act);
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float d = b2[c];
    for (int s = 0; s < S; ++s) d = fmaf(__ldg(w2 + static_cast<int64_t>(c) * S + s), hidden[s], d);
    out[n * C + c] = apply_act(d, gate);
  }
}

at::Tensor se_excite_cuda(const at::Tensor& sums_in, double inv_hw, const at::Tensor& w1, const at::Tensor& b1,
                          const at::Tensor& w2, const at::Tensor& b2, int64_t activation, int64_t gate) {
  check_se_excite_args(sums_in, w1, b1, w2, b2, activation, gate);
  EFFK_CHECK_ARG(sums_in.is_cuda(), "sums", "expected a CUDA tensor, got one on ", sums_in.device());
  c10::cuda::CUDAGuard guard(sums_in.device());
  const at::Tensor sums = sums_in.contiguous();
  const int64_t N = sums.size(0), C = sums.size(1), S = w1.size(0);
  at::Tensor out = at::empty({N, C}, sums.options());
  if (N == 0) return out;
  const size_t smem = (C + S) * sizeof(float);
  EFFK_CHECK_ARG(smem <= 48 * 1024, "sums", "expected C + S <= 12288 (shared memory), got C = ", C, ", S = ", S);
  const at::Tensor w1f = f32(w1), b1f = f32(b1), w2f = f32(w2), b2f = f32(b2);
  se_excite_kernel<<<grid_x(N, "se_excite"), kThreads, smem, c10::cuda::getCurrentCUDAStream()>>>(
      sums.const_data_ptr<float>(), static_cast<float>(inv_hw), w1f.const_data_ptr<float>(), b1f.const_data_ptr<float>(),
      w2f.const_data_ptr<float>(), b2f.const_data_ptr<float>(), out.mutable_data_ptr<float>(), static_cast<int>(C),
      static_cast<int>(S), static_cast<int>(activation), static_cast<int>(gate));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("se_excite", &se_excite_cuda); }

}  // namespace effkernels::cuda
