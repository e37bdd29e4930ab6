// SE excite MLP on CUDA: gate(w2 @ act(w1 @ (sums * inv_hw) + b1) + b2) -> fp32 [N, C].
// One launch for all N: a block per sample. The squeeze arrives as partial sums [N, G, C] (G = 1 for
// the op; the depthwise kernel's per-block partials inside mbconv), summed while the mean is taken.
// The mean [C] and hidden [S] vectors live in shared memory; a warp per hidden unit (shuffle-reduced
// dot over C), then a thread per output channel. Parameters are read in their own dtype and through
// their strides (no per-call casts). Optionally the block then writes the per-image project weights
// W'[n] = W * scale[n] (the SE scale folded into the 1x1 conv that follows).
#include <torch/library.h>

#include "../se_excite.h"
#include "ops.h"
#include "utils.cuh"

namespace effkernels::cuda {
namespace {

constexpr int kThreads = 256;

struct Fold {  // out[n] = w * scale[n] ([C_out, C] per image, dtype t), or nothing when out == nullptr
  ParamMat w;
  void* out;
  DType t;
  int c_out;
};

__global__ void __launch_bounds__(kThreads) se_excite_kernel(const float* __restrict__ partial, int G, float inv_hw,
                                                             ParamMat w1, ParamMat b1, ParamMat w2, ParamMat b2,
                                                             float* __restrict__ out, Fold fold, int C, int S, int act,
                                                             int gate) {
  extern __shared__ float smem[];
  float* mean = smem;        // [C], later the scale
  float* hidden = smem + C;  // [S]
  const int64_t n = blockIdx.x;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float s = 0.f;
    for (int g = 0; g < G; ++g) s += partial[(n * G + g) * C + c];
    mean[c] = s * inv_hw;
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int s = warp; s < S; s += warps) {
    float d = 0.f;
    for (int c = lane; c < C; c += 32) d = fmaf(w1.at(s, c), mean[c], d);
    for (int o = 16; o > 0; o >>= 1) d += __shfl_down_sync(0xffffffffu, d, o);
    if (lane == 0) hidden[s] = apply_act(d + b1.at(0, s), act);
  }
  __syncthreads();  // every read of mean is done: it becomes the scale
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float d = b2.at(0, c);
    for (int s = 0; s < S; ++s) d = fmaf(w2.at(c, s), hidden[s], d);
    const float scale = apply_act(d, gate);
    mean[c] = scale;
    if (out) out[n * C + c] = scale;
  }
  if (fold.out == nullptr) return;
  __syncthreads();
  fold_image_weights(fold.w, mean, fold.out, fold.t, n, fold.c_out, C);
}

// (Runs on sums[N, C] as partials [N, 1, C].)
at::Tensor se_excite_cuda(const at::Tensor& sums, double inv_hw, const at::Tensor& w1, const at::Tensor& b1,
                          const at::Tensor& w2, const at::Tensor& b2, int64_t activation, int64_t gate) {
  check_se_excite_args(sums, w1, b1, w2, b2, activation, gate);
  EFFK_CHECK_ARG(sums.is_cuda(), "sums", "expected a CUDA tensor, got one on ", sums.device());
  c10::cuda::CUDAGuard guard(sums.device());
  return se_excite_partials(sums.unsqueeze(1), inv_hw, w1, b1, w2, b2, activation, gate, std::nullopt, at::kFloat);
}

}  // namespace

at::Tensor se_excite_partials(const at::Tensor& partial_in, double inv_hw, const at::Tensor& w1, const at::Tensor& b1,
                              const at::Tensor& w2, const at::Tensor& b2, int64_t activation, int64_t gate,
                              const std::optional<at::Tensor>& fold_w, at::ScalarType fold_dtype) {
  const at::Tensor partial = partial_in.contiguous();
  const int64_t N = partial.size(0), G = partial.size(1), C = partial.size(2), S = w1.size(0);
  const size_t smem = (C + S) * sizeof(float);
  EFFK_CHECK_ARG(smem <= 48 * 1024, "sums", "expected C + S <= 12288 (shared memory), got C = ", C, ", S = ", S);
  at::Tensor out = fold_w ? at::empty({N, fold_w->size(0), C}, partial.options().dtype(fold_dtype))
                          : at::empty({N, C}, partial.options());
  if (N == 0) return out;
  Fold fold{{}, nullptr, DType::F32, 0};
  if (fold_w) fold = {param_mat(*fold_w), out.mutable_data_ptr(), dtype_of(out), static_cast<int>(fold_w->size(0))};
  se_excite_kernel<<<grid_x(N, "se_excite"), kThreads, smem, c10::cuda::getCurrentCUDAStream()>>>(
      partial.const_data_ptr<float>(), static_cast<int>(G), static_cast<float>(inv_hw), param_mat(w1), param_mat(b1),
      param_mat(w2), param_mat(b2), fold_w ? nullptr : out.mutable_data_ptr<float>(), fold, static_cast<int>(C),
      static_cast<int>(S), static_cast<int>(activation), static_cast<int>(gate));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("se_excite", &se_excite_cuda); }

}  // namespace effkernels::cuda
