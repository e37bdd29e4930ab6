// x * scale[n, c] on the CPU (scale fp32 [N, C]), output in x's dtype and memory format.
// NHWC: at::vec over channels, parallel over pixels; NCHW: one plane per task, one scalar each.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../se_scale.h"
#include "vec.h"

namespace effkernels::cpu {
namespace {

template <typename T>
void scale_nhwc(const T* x, const float* scale, T* out, int64_t N, int64_t C, int64_t HW) {
  at::parallel_for(0, N * HW, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* s = scale + (r / HW) * C;
      const T* xr = x + r * C;
      T* orow = out + r * C;
      int64_t c = 0;
      for (; c + kVec <= C; c += kVec) store_f(orow + c, load_f(xr + c) * Vec::loadu(s + c));
      if (c < C) {
        const int nc = static_cast<int>(C - c);
        store_f(orow + c, load_f(xr + c, nc) * Vec::loadu(s + c, nc), nc);
      }
    }
  });
}

template <typename T>
void scale_nchw(const T* x, const float* scale, T* out, int64_t planes, int64_t HW) {
  at::parallel_for(0, planes, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const Vec s(scale[q]);
      const T* xp = x + q * HW;
      T* op = out + q * HW;
      int64_t i = 0;
      for (; i + kVec <= HW; i += kVec) store_f(op + i, load_f(xp + i) * s);
      if (i < HW) {
        const int nr = static_cast<int>(HW - i);
        store_f(op + i, load_f(xp + i, nr) * s, nr);
      }
    }
  });
}

at::Tensor se_scale_cpu(const at::Tensor& x_in, const at::Tensor& scale_in) {
  check_se_scale_args(x_in, scale_in);
  check_cpu_capability();
  const at::Tensor x = dense_in_layout(x_in), scale = scale_in.contiguous();
  at::Tensor out = empty_in_layout(x, x.sizes());
  if (x.numel() == 0) return out;
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "se_scale_cpu", [&] {
    if (is_channels_last(x))
      scale_nhwc<scalar_t>(x.const_data_ptr<scalar_t>(), scale.const_data_ptr<float>(), out.mutable_data_ptr<scalar_t>(), N, C, HW);
    else
      scale_nchw<scalar_t>(x.const_data_ptr<scalar_t>(), scale.const_data_ptr<float>(), out.mutable_data_ptr<scalar_t>(), N * C, HW);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CPU, m) { m.impl("se_scale", &se_scale_cpu); }

}  // namespace effkernels::cpu
