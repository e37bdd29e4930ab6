// conv_bn_act: a dense k x k conv (groups 1) with BN folded into (weight, bias), then an activation, computed
// directly for the few-input-channel convs that start a network (EfficientNet's stem: 3 -> 32..64 at stride 2).
// ATen's oneDNN conv reached ~80 GFLOP/s on B0's stem but leaves the activation to a second pass over the
// output, and oneDNN's own swish post-op was as slow as that pass (2-core AMD EPYC, AVX2, 2026-11-30: conv
// 0.27-0.35 ms, + SiLU 0.25-0.35 ms, batch 1). Here each output vector is activated in registers before its
// only store. The Python wrapper (effkernels/ops/conv_bn_act.py) sends convs with many input channels, where
// oneDNN's blocked GEMM wins, to ATen instead.
//
// Layout: each task copies the input rows its output rows read into an fp32 buffer, zero-padded and NHWC, so
// the KW * Cin taps of one kernel row of an output column are KW * Cin consecutive floats; weights are packed
// per call (a few KB) as [channel block][kh][kw][c_in][kCB]. A micro-kernel keeps P output columns x kCB
// output channels in 2P vector accumulators and broadcasts one input value per (tap, column).
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "parallel.h"
#include "vec.h"

namespace effkernels::cpu {
namespace {

constexpr int kCB = 2 * kVec;  // output channels per block: two vectors
// Output columns per micro-kernel call: 2 * 6 accumulators + 2 weight vectors + 1 broadcast = 15 of AVX2's 16
// vector registers.
constexpr int kP = 6;
constexpr int64_t kRowsPerPiece = 8;  // output rows per padded-input piece: the piece stays in L2

// P output columns of one output row, channels [c0, c0 + nc) (nc <= kCB). xr: the padded input at the first
// kernel row of the first column; rs: floats per padded row; cs: floats between output columns (stride * Cin);
// taps: KW * Cin; w: this block's packed weights; out: the first column's first channel, columns ostep apart
// and channels cstep apart (NHWC: Cout, 1; NCHW: 1, OH * OW).
template <typename T, int P>
EFFK_INLINE void columns(const float* xr, int64_t rs, int64_t cs, int KH, int taps, const float* w, const float* b,
                         T* out, int64_t ostep, int64_t cstep, int nc, int act) {
  Vec a0[P], a1[P];
  const Vec b0 = Vec::loadu(b), b1 = Vec::loadu(b + kVec);
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) a0[p] = b0, a1[p] = b1;
  for (int kh = 0; kh < KH; ++kh) {
    const float* x = xr + kh * rs;
    for (int t = 0; t < taps; ++t, w += kCB) {
      const Vec w0 = Vec::loadu(w), w1 = Vec::loadu(w + kVec);
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) {
        const Vec v(x[p * cs + t]);
        a0[p] = at::vec::fmadd(v, w0, a0[p]);
        a1[p] = at::vec::fmadd(v, w1, a1[p]);
      }
    }
  }
  if (cstep == 1) {  // NHWC: two (partial) vector stores per column
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) {
      store_f(out + p * ostep, act_vec(a0[p], act), std::min(nc, kVec));
      if (nc > kVec) store_f(out + p * ostep + kVec, act_vec(a1[p], act), nc - kVec);
    }
  } else {  // NCHW: through a buffer, then P consecutive values per channel plane
    alignas(64) float buf[P][kCB];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) {
      act_vec(a0[p], act).store(buf[p]);
      act_vec(a1[p], act).store(buf[p] + kVec);
    }
    for (int c = 0; c < nc; ++c)
      for (int p = 0; p < P; ++p) out[c * cstep + p * ostep] = static_cast<T>(buf[p][c]);
  }
}

template <typename T>
void conv_bn_act_kernel(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& out,
                        int64_t SH, int64_t SW, int64_t pad_top, int64_t pad_left, int act) {
  const int64_t N = x.size(0), Cin = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Cout = out.size(1), OH = out.size(2), OW = out.size(3);
  const int KH = static_cast<int>(weight.size(2)), KW = static_cast<int>(weight.size(3));
  const int taps = static_cast<int>(KW * Cin);
  const int64_t nblocks = (Cout + kCB - 1) / kCB;
  // Packed weights [block][kh][kw][c_in][kCB] and bias [block][kCB], fp32, zero past Cout.
  std::vector<float> wp(nblocks * KH * taps * kCB, 0.f), bp(nblocks * kCB, 0.f);
  const auto wf = weight.to(at::kFloat).contiguous();
  const auto bf = bias.to(at::kFloat).contiguous();
  const float* wsrc = wf.const_data_ptr<float>();
  for (int64_t co = 0; co < Cout; ++co) {
    bp[co] = bf.const_data_ptr<float>()[co];
    for (int64_t ci = 0; ci < Cin; ++ci)
      for (int kh = 0; kh < KH; ++kh)
        for (int kw = 0; kw < KW; ++kw)
          wp[(((co / kCB) * KH + kh) * taps + kw * Cin + ci) * kCB + co % kCB] =
              wsrc[((co * Cin + ci) * KH + kh) * KW + kw];
  }
  const int64_t Wp = (OW - 1) * SW + KW;  // padded columns read
  const T* xp = x.const_data_ptr<T>();
  const int64_t xs0 = x.stride(0), xs1 = x.stride(1), xs2 = x.stride(2), xs3 = x.stride(3);
  const bool x_nhwc = xs1 == 1 && xs3 == Cin;
  T* op = out.mutable_data_ptr<T>();
  const bool cl = is_channels_last(out) || Cout == 1;
  const int64_t ostep = cl ? Cout : 1, cstep = cl ? 1 : OH * OW;

  // A task: kRowsPerPiece output rows of one image (a piece).
  const int64_t pieces = (OH + kRowsPerPiece - 1) / kRowsPerPiece;
  parallel_tasks(N * pieces, [&](auto&& next) {
    std::vector<float> piece(((kRowsPerPiece - 1) * SH + KH) * Wp * Cin);
    for (int64_t u; (u = next()) >= 0;) {
      const int64_t n = u / pieces, oh0 = u % pieces * kRowsPerPiece, oh1 = std::min(OH, oh0 + kRowsPerPiece);
      const int64_t rows = (oh1 - oh0 - 1) * SH + KH;
      // Padded input rows oh0 * SH - pad_top + [0, rows), columns -pad_left + [0, Wp), as fp32 NHWC.
      for (int64_t i = 0; i < rows; ++i) {
        float* dst = piece.data() + i * Wp * Cin;
        const int64_t y = oh0 * SH - pad_top + i;
        if (y < 0 || y >= H) {
          std::fill(dst, dst + Wp * Cin, 0.f);
          continue;
        }
        const int64_t c0 = std::clamp<int64_t>(pad_left, 0, Wp), c1 = std::clamp<int64_t>(pad_left + W, 0, Wp);
        std::fill(dst, dst + c0 * Cin, 0.f);
        std::fill(dst + c1 * Cin, dst + Wp * Cin, 0.f);
        const T* src = xp + n * xs0 + y * xs2;
        if (x_nhwc) {  // consecutive values (converted one by one, bf16 B0's stem took 1.5x fp32's time)
          if (c1 > c0) to_f32(src + (c0 - pad_left) * Cin, (c1 - c0) * Cin, dst + c0 * Cin);
          continue;
        }
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t ci = 0; ci < Cin; ++ci)
            dst[c * Cin + ci] = static_cast<float>(src[(c - pad_left) * xs3 + ci * xs1]);
      }
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        const float* xr = piece.data() + (oh - oh0) * SH * Wp * Cin;
        for (int64_t blk = 0; blk < nblocks; ++blk) {
          const float* wb = wp.data() + blk * KH * taps * kCB;
          const float* bb = bp.data() + blk * kCB;
          const int nc = static_cast<int>(std::min<int64_t>(kCB, Cout - blk * kCB));
          T* ob = op + n * OH * OW * Cout + blk * kCB * cstep + oh * OW * ostep;
          int64_t ow = 0;
          for (; ow + kP <= OW; ow += kP)
            columns<T, kP>(xr + ow * SW * Cin, Wp * Cin, SW * Cin, KH, taps, wb, bb, ob + ow * ostep, ostep, cstep, nc,
                           act);
          for (; ow < OW; ++ow)
            columns<T, 1>(xr + ow * SW * Cin, Wp * Cin, SW * Cin, KH, taps, wb, bb, ob + ow * ostep, ostep, cstep, nc,
                          act);
        }
      }
    }
  });
}

at::Tensor conv_bn_act_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::IntArrayRef stride,
                           int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, int64_t activation) {
  check_activation_tensor(x, "x");
  const int64_t Cin = x.size(1);
  EFFK_CHECK_ARG(weight.dim() == 4 && weight.size(1) == Cin && weight.size(0) >= 1, "weight",
                 "expected shape [C_out, ", Cin, ", kh, kw] (groups 1, C_in = x.shape[1]), got ", weight.sizes());
  check_param(weight, "weight", weight.sizes(), x);
  EFFK_CHECK_ARG(weight.scalar_type() == x.scalar_type(), "weight", "expected x's dtype ", x.scalar_type(), ", got ",
                 weight.scalar_type());
  check_param(bias, "bias", {weight.size(0)}, x);
  EFFK_CHECK_ARG(bias.scalar_type() == x.scalar_type(), "bias", "expected x's dtype ", x.scalar_type(), ", got ",
                 bias.scalar_type());
  EFFK_CHECK_ARG(stride.size() == 2 && stride[0] >= 1 && stride[1] >= 1, "stride",
                 "expected two positive strides (height, width), got ", stride);
  EFFK_CHECK_ARG(pad_top >= 0 && pad_left >= 0, "padding", "expected non-negative pad_top, pad_left, got ", pad_top,
                 ", ", pad_left);
  EFFK_CHECK_ARG(out_h >= 1 && out_w >= 1, "out_h/out_w", "expected a positive output size, got ", out_h, "x", out_w);
  check_act_code(activation, "activation");
  check_cpu_capability();
  at::Tensor out = empty_in_layout(x, {x.size(0), weight.size(0), out_h, out_w});
  if (out.numel() == 0) return out;
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "conv_bn_act_cpu", [&] {
    conv_bn_act_kernel<scalar_t>(x, weight, bias, out, stride[0], stride[1], pad_top, pad_left, static_cast<int>(activation));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CPU, m) { m.impl("conv_bn_act", &conv_bn_act_cpu); }

}  // namespace effkernels::cpu
