// 1x1 conv on CUDA: act(conv1x1(x * scale[n, c_in]) + bias) + residual.
// The GEMM goes through ATen (cuBLAS); one epilogue kernel then applies bias, activation and the
// residual in place (one pass over the output, which is the narrow tensor of an MBConv block's project).
// SE scale, chosen per shape: folding it into per-sample weights W * scale[n] ([N, C_out, C_in], one
// small kernel) costs N*C_out*C_in extra elements and no pass over x, but turns the GEMM into a batched
// GEMM of HW rows per sample. When HW >= C_out the scaled weights are no larger than the sample's
// activations and the batched GEMM has enough rows: fold. Otherwise (late stages: HW = 49, C_out up to
// 320+) rescale x with se_scale and keep one large GEMM.
#include <torch/library.h>

#include "../pointwise_conv.h"
#include "ops.h"
#include "utils.cuh"

namespace effkernels::cuda {
namespace {

constexpr int kThreads = 256;

// o[e] = act(o[e] + bias[c]) + r[e]; c = e % C (NHWC) or (e / HW) % C (NCHW).
template <typename T>
__global__ void __launch_bounds__(kThreads) epilogue_kernel(T* __restrict__ o, const T* __restrict__ r, ParamMat bias,
                                                            int64_t numel, int64_t C, int64_t HW, int act, bool nhwc,
                                                            bool vec_ok) {
  constexpr int V = kVec<T>;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if (vec_ok) {
    for (int64_t e = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * V; e < numel; e += step * V) {
      float v[V], rv[V];
      unpack<T>(*reinterpret_cast<const uint4*>(o + e), v);
      if (r) load_vec(r + e, rv);
      const int64_t c0 = nhwc ? e % C : (e / HW) % C;
#pragma unroll
      for (int i = 0; i < V; ++i) v[i] += bias.at(0, nhwc ? c0 + i : c0);
      act_array(v, act);
      if (r)
#pragma unroll
        for (int i = 0; i < V; ++i) v[i] += rv[i];
      store_vec(o + e, v);
    }
  } else {
    for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < numel; e += step) {
      const int64_t c = nhwc ? e % C : (e / HW) % C;
      float v = apply_act(to_f32(o[e]) + bias.at(0, c), act);
      if (r) v += to_f32(r[e]);
      o[e] = from_f32<T>(v);
    }
  }
}

// out[n] = weight * scale[n]: a block per sample.
__global__ void __launch_bounds__(kThreads) fold_scale_kernel(ParamMat w, const float* __restrict__ scale, void* out,
                                                              DType out_t, int c_out, int c_in) {
  fold_image_weights(w, scale + static_cast<int64_t>(blockIdx.x) * c_in, out, out_t, blockIdx.x, c_out, c_in);
}

at::Tensor pointwise_conv_cuda(const at::Tensor& x_in, const at::Tensor& weight, const at::Tensor& bias,
                               int64_t activation, const std::optional<at::Tensor>& scale,
                               const std::optional<at::Tensor>& residual) {
  check_pointwise_args(x_in, weight, bias, activation, scale, residual);
  EFFK_NO_AUTOCAST;
  // Inference kernel: ATen calls below must not record autograd (parameters may require grad).
  at::AutoDispatchBelowADInplaceOrView no_autograd;
  EFFK_CHECK_ARG(x_in.is_cuda(), "x", "expected a CUDA tensor, got one on ", x_in.device());
  c10::cuda::CUDAGuard guard(x_in.device());
  const int64_t N = x_in.size(0), Cin = x_in.size(1), HW = x_in.size(2) * x_in.size(3), Cout = weight.size(0);
  const bool fold = scale && HW >= Cout;
  at::Tensor x = dense_in_layout(x_in);
  if (scale && !fold && x.numel() > 0) {
    at::Tensor scaled = empty_in_layout(x, x.sizes());
    se_scale_into(x, *scale, scaled);
    x = scaled;
  }
  at::Tensor w;
  if (fold) {
    w = at::empty({N, Cout, Cin}, x.options());
    if (N > 0) {
      const at::Tensor s = scale->contiguous();
      fold_scale_kernel<<<grid_x(N, "pointwise_conv"), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          param_mat(weight), s.const_data_ptr<float>(), w.mutable_data_ptr(), dtype_of(w), static_cast<int>(Cout),
          static_cast<int>(Cin));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  } else {
    w = weight.to(x.scalar_type());
  }
  return pointwise_gemm(x, w, bias, activation, residual);
}

}  // namespace

at::Tensor pointwise_gemm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, int64_t activation,
                          const std::optional<at::Tensor>& residual) {
  const int64_t N = x.size(0), Cin = x.size(1), HW = x.size(2) * x.size(3), Cout = w.size(-2);
  const auto fmt = layout_of(x);
  at::Tensor out = empty_in_layout(x, {N, Cout, x.size(2), x.size(3)});
  if (out.numel() == 0) return out;
  const bool nhwc = fmt == at::MemoryFormat::ChannelsLast;
  if (nhwc) {
    // Rows are pixels: [.., HW, Cin] @ [Cin, Cout] lands directly in NHWC memory.
    const at::Tensor x2d = x.permute({0, 2, 3, 1}).reshape({N * HW, Cin});
    at::Tensor o2d = out.permute({0, 2, 3, 1}).view({N * HW, Cout});
    if (w.dim() == 3) {
      at::Tensor o3 = o2d.view({N, HW, Cout});
      at::bmm_out(o3, x2d.view({N, HW, Cin}), w.transpose(1, 2));
    } else {
      at::mm_out(o2d, x2d, w.t());
    }
  } else {
    at::Tensor o3 = out.view({N, Cout, HW});
    at::bmm_out(o3, w.dim() == 3 ? w : w.expand({N, Cout, Cin}), x.view({N, Cin, HW}));
  }
  const at::Tensor res = residual ? residual->contiguous(fmt) : at::Tensor();
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "pointwise_conv_cuda", [&] {
    using T = typename CudaType<scalar_t>::type;
    constexpr int V = kVec<T>;
    const bool vec_ok = (nhwc ? Cout % V == 0 : HW % V == 0) && aligned16(out.const_data_ptr()) &&
                        (!res.defined() || aligned16(res.const_data_ptr()));
    const int64_t numel = out.numel(), work = vec_ok ? numel / V : numel;
    const int64_t blocks = std::min<int64_t>((work + kThreads - 1) / kThreads, int64_t{1} << 20);
    epilogue_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        static_cast<T*>(out.mutable_data_ptr()), res.defined() ? static_cast<const T*>(res.const_data_ptr()) : nullptr,
        param_mat(bias), numel, Cout, HW, static_cast<int>(activation), nhwc, vec_ok);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("pointwise_conv", &pointwise_conv_cuda); }

}  // namespace effkernels::cuda
