// x * scale[n, c] on CUDA (scale fp32 [N, C]); output in x's dtype and memory format.
// Grid-stride over 16-byte vectors when each vector stays within one (n, c) run (NHWC: C % V == 0,
// channels contiguous; NCHW: HW % V == 0, one scale per vector), else over elements.
#include <torch/library.h>

#include "../se_scale.h"
#include "ops.h"
#include "utils.cuh"

namespace effkernels::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads) se_scale_kernel(const T* x, const float* __restrict__ scale, T* out,
                                                            int64_t numel, int64_t C, int64_t HW, bool nhwc,
                                                            bool vec_ok) {
  constexpr int V = kVec<T>;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if (vec_ok) {
    for (int64_t e = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * V; e < numel; e += step * V) {
      float v[V];
      unpack<T>(*reinterpret_cast<const uint4*>(x + e), v);
      if (nhwc) {
        const float* s = scale + (e / (C * HW)) * C + e % C;
#pragma unroll
        for (int i = 0; i < V; ++i) v[i] *= __ldg(s + i);
      } else {
        const float s = __ldg(scale + e / HW);
#pragma unroll
        for (int i = 0; i < V; ++i) v[i] *= s;
      }
      store_vec(out + e, v);
    }
  } else {
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < numel; e += step) {
      const int64_t si = nhwc ? (e / (C * HW)) * C + e % C : e / HW;
      out[e] = from_f32<T>(to_f32(x[e]) * __ldg(scale + si));
    }
  }
}

at::Tensor se_scale_cuda(const at::Tensor& x_in, const at::Tensor& scale) {
  check_se_scale_args(x_in, scale);
  EFFK_CHECK_ARG(x_in.is_cuda(), "x", "expected a CUDA tensor, got one on ", x_in.device());
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = dense_in_layout(x_in);
  at::Tensor out = empty_in_layout(x, x.sizes());
  se_scale_into(x, scale, out);
  return out;
}

}  // namespace

// (x and out may alias: each element is read, then written, by the same thread; x is not read through
// the read-only cache for that reason.)
void se_scale_into(const at::Tensor& x, const at::Tensor& scale_in, at::Tensor& out) {
  const int64_t numel = x.numel(), C = x.size(1), HW = x.size(2) * x.size(3);
  if (numel == 0) return;
  const at::Tensor scale = scale_in.contiguous();
  const bool nhwc = is_channels_last(x);
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "se_scale_cuda", [&] {
    using T = typename CudaType<scalar_t>::type;
    constexpr int V = kVec<T>;
    const bool vec_ok = (nhwc ? C % V == 0 : HW % V == 0) && aligned16(x.const_data_ptr()) &&
                        aligned16(out.const_data_ptr());
    const int64_t work = vec_ok ? numel / V : numel;
    const int64_t blocks = std::min<int64_t>((work + kThreads - 1) / kThreads, int64_t{1} << 20);
    se_scale_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        static_cast<const T*>(x.const_data_ptr()), scale.const_data_ptr<float>(), static_cast<T*>(out.mutable_data_ptr()),
        numel, C, HW, nhwc, vec_ok);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("se_scale", &se_scale_cuda); }

}  // namespace effkernels::cuda
