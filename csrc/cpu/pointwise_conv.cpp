// 1x1 conv on the CPU: act(conv1x1(x * scale[n, c_in]) + bias) + residual, GEMMs through ATen.
// NHWC: x is a [N*H*W, C_in] matrix. Work is split into row chunks sized to stay in L2; each task
// runs its chunk's GEMM (ATen, single-threaded inside the parallel region) and the epilogue while
// the chunk is still in cache: no extra pass over the output. The SE scale is folded into
// per-sample weights W * scale[n] (C_out x C_in per sample, ~1/HW of the GEMM's work), so x is
// never rescaled in memory; chunks then stay within one sample.
// NCHW: one batched GEMM W[n] @ x[n] ([C_out, C_in] @ [C_in, HW]) and a vectorized epilogue pass.
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <torch/library.h>

#include "vec.h"

namespace effkernels::cpu {
namespace {

// rows x C matrix (row stride C): o = act(o + bias[c]) + r.
template <typename T>
void epilogue_rows(T* o, const T* r, const float* bias, int64_t rows, int64_t C, int act) {
  for (int64_t i = 0; i < rows; ++i) {
    T* orow = o + i * C;
    const T* rrow = r ? r + i * C : nullptr;
    for (int64_t c = 0; c < C; c += kVec) {
      const int nc = static_cast<int>(std::min<int64_t>(kVec, C - c));
      const bool full = nc == kVec;
      Vec v = act_vec((full ? load_f(orow + c) : load_f(orow + c, nc)) + (full ? Vec::loadu(bias + c) : Vec::loadu(bias + c, nc)), act);
      if (rrow) v = v + (full ? load_f(rrow + c) : load_f(rrow + c, nc));
      store_f(orow + c, v, nc);
    }
  }
}

// NCHW: planes of HW elements, channel q % C: o = act(o + bias[c]) + r.
template <typename T>
void epilogue_planes(T* o, const T* r, const float* bias, int64_t planes, int64_t C, int64_t HW, int act) {
  at::parallel_for(0, planes, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const Vec b(bias[q % C]);
      T* op = o + q * HW;
      const T* rp = r ? r + q * HW : nullptr;
      for (int64_t i = 0; i < HW; i += kVec) {
        const int nr = static_cast<int>(std::min<int64_t>(kVec, HW - i));
        const bool full = nr == kVec;
        Vec v = act_vec((full ? load_f(op + i) : load_f(op + i, nr)) + b, act);
        if (rp) v = v + (full ? load_f(rp + i) : load_f(rp + i, nr));
        store_f(op + i, v, nr);
      }
    }
  });
}

at::Tensor pointwise_conv_cpu(const at::Tensor& x_in, const at::Tensor& weight, const at::Tensor& bias,
                              int64_t activation, const std::optional<at::Tensor>& scale,
                              const std::optional<at::Tensor>& residual) {
  check_pointwise_args(x_in, weight, bias, activation, scale, residual);
  EFFK_NO_AUTOCAST;
  // Inference kernel: ATen calls below must not record autograd (parameters may require grad).
  at::AutoDispatchBelowADInplaceOrView no_autograd;
  check_cpu_capability();
  const at::Tensor x = dense_in_layout(x_in);
  const int64_t N = x.size(0), Cin = x.size(1), H = x.size(2), W = x.size(3), HW = H * W, Cout = weight.size(0);
  at::Tensor out = empty_in_layout(x, {N, Cout, H, W});
  if (out.numel() == 0) return out;
  const auto fmt = layout_of(x);
  const at::Tensor b = f32(bias);
  const at::Tensor res = residual ? residual->contiguous(fmt) : at::Tensor();
  // [Cout, Cin] or, with the SE scale folded in, [N, Cout, Cin], in x's dtype.
  const at::Tensor w = scale ? (f32(weight).unsqueeze(0) * scale->unsqueeze(1)).to(x.scalar_type())
                             : weight.to(x.scalar_type()).contiguous();
  const int act = static_cast<int>(activation);

  if (fmt == at::MemoryFormat::ChannelsLast) {
    const at::Tensor x2d = x.permute({0, 2, 3, 1}).reshape({N * HW, Cin});
    at::Tensor out2d = out.permute({0, 2, 3, 1}).view({N * HW, Cout});
    // ~512 KiB of output per chunk (L2-resident for the epilogue), at least 512 rows (smaller GEMMs
    // lose efficiency: measured with MKL on [M, K] x [K, N] B0 shapes).
    const int64_t rows = std::max<int64_t>(512, (512 << 10) / (Cout * static_cast<int64_t>(x.element_size())));
    const int64_t seg = scale ? HW : N * HW;  // chunks never cross a sample when weights are per sample
    const int64_t per_seg = (seg + rows - 1) / rows, nseg = N * HW / seg;
    EFFK_DISPATCH_FLOAT(x.scalar_type(), "pointwise_conv_cpu", [&] {
      const scalar_t* r = res.defined() ? res.const_data_ptr<scalar_t>() : nullptr;
      scalar_t* o = out.mutable_data_ptr<scalar_t>();
      // OpenMP workers start with default thread-local state: give them the caller's (dispatch keys,
      // inference mode) so mm_out into `out` behaves as it would on this thread.
      const at::ThreadLocalState tls;
      at::parallel_for(0, nseg * per_seg, 1, [&](int64_t u0, int64_t u1) {
        at::ThreadLocalStateGuard tls_guard(tls);
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t s = u / per_seg, r0 = s * seg + (u % per_seg) * rows;
          const int64_t nr = std::min(rows, (s + 1) * seg - r0);
          at::Tensor oc = out2d.narrow(0, r0, nr);
          at::mm_out(oc, x2d.narrow(0, r0, nr), (scale ? w[s] : w).t());
          epilogue_rows<scalar_t>(o + r0 * Cout, r ? r + r0 * Cout : nullptr, b.const_data_ptr<float>(), nr, Cout, act);
        }
      });
    });
  } else {
    at::Tensor out3 = out.view({N, Cout, HW});
    at::bmm_out(out3, w.expand({N, Cout, Cin}), x.view({N, Cin, HW}));
    EFFK_DISPATCH_FLOAT(x.scalar_type(), "pointwise_conv_cpu", [&] {
      epilogue_planes<scalar_t>(out.mutable_data_ptr<scalar_t>(), res.defined() ? res.const_data_ptr<scalar_t>() : nullptr,
                                b.const_data_ptr<float>(), N * Cout, Cout, HW, act);
    });
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CPU, m) { m.impl("pointwise_conv", &pointwise_conv_cpu); }

}  // namespace effkernels::cpu
