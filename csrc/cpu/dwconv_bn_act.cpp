// Fused depthwise k x k conv + folded BN + activation (+ SE spatial sums) on the CPU.
// NHWC: parallel over (batch x row tiles), 16 fp32 lanes with AVX-512 (8 with AVX2), up to 8 output
// columns per weight load, k and stride compile-time. Two ways to feed the column walks:
//   dw_ring   any dtype and k: input rows are copied once into a ring of fp32 row buffers (padding as
//             zero columns) laid out channel vector by channel vector;
//   dw_direct fp32, k <= 3, C a multiple of the vector width: input rows are read in place, a batch of
//             rows at a time pulled into L2 by one linear pass (measured faster for every B0 k3 layer;
//             slower for k5, whose strided walks over 5 rows and wider borders favour the ring).
// SE sums are reduced from per-tile partials.
// NCHW input is transposed to NHWC and the output back (two extra passes over memory). The scalar NCHW
// loops this replaced were 2-20x slower than eager's NCHW convolution on B0's layers at batch 8; with
// the transposes the op is ~3x faster than it on the stride-1 k3 layers of 112x112 and 56x56 (where
// eager NCHW is slow) and 0.5-0.85x on the rest. The MBConv block op transposes once per block instead.
// Callers that care pass channels_last.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../dwconv_bn_act.h"
#include "../static_switch.h"
#include "dw_pixels.h"
#include "parallel.h"

namespace effkernels::cpu {
namespace {

struct Geom {
  int64_t N, C, H, W, OH, OW, stride, pad_t, pad_l, k;
};

// One input row (W pixels of C channels, NHWC) into a row buffer: channel vector cv of pixel iw goes to
// dst + cv * cv_stride + iw * kVec, in fp32 (lanes past C zero). A function of its own with restrict
// pointers and local sizes: inline, the stores could alias the Geom fields, which were reloaded after
// each one (the copy ran at half the single-core read bandwidth).
template <typename T>
void load_row(const T* __restrict src, float* __restrict dst, const int64_t W, const int64_t C, const int64_t cv_stride) {
  const int64_t full = C / kVec * kVec;
  for (int64_t iw = 0; iw < W; ++iw, src += C, dst += kVec) {
    float* d = dst;
    for (int64_t c = 0; c < full; c += kVec, d += cv_stride) load_f(src + c).store(d);
    if (full < C) load_f(src + full, static_cast<int>(C - full)).store(d);
  }
}

// Tasks are (n, row tile). Each task keeps a ring of the K input rows its current output row reads,
// converted to fp32 and laid out [C / kVec][Wp][kVec] with zero columns for the padding: a row is
// loaded once, in one linear pass over memory (the hardware prefetchers follow that; the column walks
// over strided 64-channel slices they did not, and cold stride-2 layers ran at a third of the copy
// bandwidth), and every column walk after that reads contiguous fp32 from L1/L2 with no border checks.
template <typename T, int K, int S>
void dw_ring(const T* x, T* out, const float* wpk, const float* bpk, float* partial, const Geom& g, int64_t Cp,
             int64_t tiles, int64_t rows_per_tile, int act) {
  const int64_t Cv = Cp / kVec;
  // Input column iw sits at buffer column iw + pad_l; output column ow's window starts at ow * S.
  const int64_t Wp = std::max(g.W + g.pad_l, (g.OW - 1) * S + K);
  const int64_t slot_size = Cv * Wp * kVec;
  parallel_tasks(g.N * tiles, [&](auto&& next) {
    RowRing<K, S> ring(slot_size);
    for (int64_t u; (u = next()) >= 0;) {
      const int64_t n = u / tiles, tile = u % tiles;
      const int64_t oh0 = tile * rows_per_tile, oh1 = std::min(g.OH, oh0 + rows_per_tile);
      ring.reset();
      float* part = partial ? partial + u * Cp : nullptr;
      if (part) std::fill(part, part + Cp, 0.f);
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        const float* rows[K];
        ring.rows_for(oh, g.pad_t, g.H, rows, [&](float* buf, int64_t ih) {
          load_row(x + ((n * g.H + ih) * g.W) * g.C, buf + g.pad_l * kVec, g.W, g.C, Wp * kVec);
        });
        // Fetch the input rows the next output row adds while this one computes (only the loads above
        // reach DRAM; without this the memory sat idle during the compute), a slice per channel vector:
        // issued all at once, the prefetches overflowed the miss queues.
        const char* next[S];
        int n_next = 0;
        for (int64_t ih = (oh + 1) * S - g.pad_t + K - S; oh + 1 < oh1 && ih < (oh + 1) * S - g.pad_t + K; ++ih)
          if (ih >= 0 && ih < g.H) next[n_next++] = reinterpret_cast<const char*>(x + ((n * g.H + ih) * g.W) * g.C);
        const int64_t row_bytes = g.W * g.C * static_cast<int64_t>(sizeof(T));
        const int64_t slice = (row_bytes / Cv + 64) & ~int64_t{63};
        T* orow = out + ((n * g.OH + oh) * g.OW) * g.C;
        for (int64_t cv = 0; cv < Cv; ++cv) {
          for (int i = 0; i < n_next; ++i)
            for (int64_t b = cv * slice; b < std::min(row_bytes, (cv + 1) * slice); b += 64) __builtin_prefetch(next[i] + b, 0, 2);
          const int64_t c = cv * kVec;
          const int nc = static_cast<int>(std::min<int64_t>(kVec, g.C - c));
          const float* crow[K];
          for (int kh = 0; kh < K; ++kh) crow[kh] = rows[kh] ? rows[kh] + cv * Wp * kVec : nullptr;
          column_groups(0, g.OW, [&](auto p, int64_t ow) {
            constexpr int P = decltype(p)::value;
            const float* r[K];
            for (int kh = 0; kh < K; ++kh) r[kh] = crow[kh] ? crow[kh] + ow * S * kVec : nullptr;
            pixels<T, K, S, P>(r, kVec, wpk + c, Cp, bpk + c, orow + ow * g.C + c, g.C, part ? part + c : nullptr, nc, act);
          });
        }
      }
    }
  });
}

// Reads [p, p + bytes) once with plain loads: a tight linear pass, which the hardware prefetchers stream
// at full read bandwidth. Software prefetches do not train them, and issued between the compute they
// kept too few misses in flight (cold layers ran at a third of the read bandwidth).
__attribute__((noinline)) void touch(const char* p, int64_t bytes) {
  Vec acc(0.f);
  for (int64_t b = 0; b + 64 <= bytes; b += 64) acc = at::vec::maximum(acc, Vec::loadu(p + b));
  asm volatile("" : : "m"(acc));  // keeps the loads
}

constexpr int64_t kTouchBytes = 512 << 10;  // half the L2 of a Zen 4/5 core, a third of a Sapphire Rapids one

// fp32, C % kVec == 0. Tasks as in dw_ring; every B output rows, the input rows of the next B (about
// kTouchBytes) are touched into L2, then each output row is computed from the rows in place, channel
// vectors innermost: a group of P output columns reads P*S+K-1 input columns of all C channels, which
// are contiguous. The columns whose window reaches into the padding (outside [ow_lo, ow_hi)) gather
// their taps into a zero-padded scratch first.
template <int K, int S>
void dw_direct(const float* x, float* out, const float* wpk, const float* bpk, float* partial, const Geom& g,
               int64_t Cp, int64_t tiles, int64_t rows_per_tile, int act) {
  const int64_t row_bytes = g.W * g.C * int64_t{sizeof(float)};
  const int64_t B = std::max<int64_t>(1, (kTouchBytes / row_bytes - K) / S + 1);
  const int64_t last = g.W - K + g.pad_l;  // the last window start inside the row; < 0: there is none
  const int64_t ow_lo = std::min(g.OW, (g.pad_l + S - 1) / S);
  const int64_t ow_hi = last < 0 ? ow_lo : std::clamp<int64_t>(last / S + 1, ow_lo, g.OW);
  parallel_tasks(g.N * tiles, [&](auto&& next) {
    for (int64_t u; (u = next()) >= 0;) {
      const int64_t n = u / tiles, tile = u % tiles;
      const int64_t oh0 = tile * rows_per_tile, oh1 = std::min(g.OH, oh0 + rows_per_tile);
      float* part = partial ? partial + u * Cp : nullptr;
      if (part) std::fill(part, part + Cp, 0.f);
      const float* xn = x + n * g.H * g.W * g.C;
      int64_t touched = -1;  // the last input row touched
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        if ((oh - oh0) % B == 0) {
          const int64_t ih1 = std::min(g.H, (std::min(oh1, oh + B) - 1) * S - g.pad_t + K);
          for (int64_t ih = std::max({int64_t{0}, oh * S - g.pad_t, touched + 1}); ih < ih1; ++ih)
            touch(reinterpret_cast<const char*>(xn + ih * g.W * g.C), row_bytes);
          touched = ih1 - 1;
        }
        const float* rows[K];
        for (int kh = 0; kh < K; ++kh) {
          const int64_t ih = oh * S - g.pad_t + kh;
          rows[kh] = ih < 0 || ih >= g.H ? nullptr : xn + ih * g.W * g.C;
        }
        float* orow = out + ((n * g.OH + oh) * g.OW) * g.C;
        column_groups(ow_lo, ow_hi, [&](auto p, int64_t ow) {
          constexpr int P = decltype(p)::value;
          const float* r[K];
          for (int64_t c = 0; c < g.C; c += kVec) {
            for (int kh = 0; kh < K; ++kh) r[kh] = rows[kh] ? rows[kh] + (ow * S - g.pad_l) * g.C + c : nullptr;
            pixels<float, K, S, P>(r, g.C, wpk + c, Cp, bpk + c, orow + ow * g.C + c, g.C, part ? part + c : nullptr,
                                   kVec, act);
          }
        });
        auto border = [&](int64_t ow) {
          alignas(64) float scratch[K][(S + K - 1) * kVec];  // pixels' walk spans S + K - 1 columns
          const float* r[K];
          for (int64_t c = 0; c < g.C; c += kVec) {
            for (int kh = 0; kh < K; ++kh) {
              r[kh] = rows[kh] ? scratch[kh] : nullptr;
              for (int j = 0; rows[kh] && j < K; ++j) {
                const int64_t iw = ow * S - g.pad_l + j;
                (iw >= 0 && iw < g.W ? Vec::loadu(rows[kh] + iw * g.C + c) : Vec(0.f)).store(scratch[kh] + j * kVec);
              }
            }
            pixels<float, K, S, 1>(r, kVec, wpk + c, Cp, bpk + c, orow + ow * g.C + c, g.C, part ? part + c : nullptr,
                                   kVec, act);
          }
        };
        for (int64_t ow = 0; ow < ow_lo; ++ow) border(ow);
        for (int64_t ow = ow_hi; ow < g.OW; ++ow) border(ow);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> dwconv_bn_act_cpu(const at::Tensor& x_in, const at::Tensor& weight,
                                                     const at::Tensor& bias, int64_t stride, int64_t pad_top,
                                                     int64_t pad_left, int64_t out_h, int64_t out_w,
                                                     int64_t activation, bool se_sums) {
  const int64_t k = check_dwconv_args(x_in, weight, bias, stride, pad_top, pad_left, out_h, out_w, activation);
  check_cpu_capability();
  const at::Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  Geom g{x.size(0), x.size(1), x.size(2), x.size(3), out_h, out_w, stride, pad_top, pad_left, k};
  at::Tensor out = at::empty({g.N, g.C, out_h, out_w}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  at::Tensor sums = se_sums ? at::zeros({g.N, g.C}, x.options().dtype(at::kFloat)) : at::empty({0}, x.options().dtype(at::kFloat));
  if (out.numel() == 0) return {in_layout_of(out, x_in), sums};
  const int act = static_cast<int>(activation);
  // Weights packed [k*k, Cp] and bias [Cp] in fp32, Cp = C rounded up to the vector width (zeros).
  const int64_t Cp = (g.C + kVec - 1) / kVec * kVec;
  at::Tensor wpk = at::zeros({k * k, Cp}, x.options().dtype(at::kFloat));
  wpk.narrow(1, 0, g.C).copy_(weight.reshape({g.C, k * k}).t());
  at::Tensor bpk = at::zeros({Cp}, wpk.options());
  bpk.narrow(0, 0, g.C).copy_(bias);
  // Enough (n, row tile) tasks for every thread when N is small.
  const int64_t want = std::max<int64_t>(1, (8 * at::get_num_threads() + g.N - 1) / g.N);
  const int64_t rows_per_tile = std::max<int64_t>(1, (out_h + want - 1) / want);
  const int64_t tiles = (out_h + rows_per_tile - 1) / rows_per_tile;
  at::Tensor partial = se_sums ? at::empty({g.N, tiles, Cp}, wpk.options()) : at::Tensor();
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "dwconv_bn_act_cpu", [&] {
    float* part = se_sums ? partial.mutable_data_ptr<float>() : nullptr;
    auto run = [&](auto kconst, auto sconst) {
      constexpr int K = decltype(kconst)::value, S = decltype(sconst)::value;
      if constexpr (std::is_same_v<scalar_t, float> && K <= 3) {
        if (g.C % kVec == 0)
          return dw_direct<K, S>(x.const_data_ptr<float>(), out.mutable_data_ptr<float>(), wpk.const_data_ptr<float>(),
                                 bpk.const_data_ptr<float>(), part, g, Cp, tiles, rows_per_tile, act);
      }
      dw_ring<scalar_t, K, S>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), wpk.const_data_ptr<float>(),
                              bpk.const_data_ptr<float>(), part, g, Cp, tiles, rows_per_tile, act);
    };
    dw_static_switch(k, stride, run);
  });
  if (se_sums) sums.copy_(partial.sum(1).narrow(1, 0, g.C));
  return {in_layout_of(out, x_in), sums};
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CPU, m) { m.impl("dwconv_bn_act", &dwconv_bn_act_cpu); }

}  // namespace effkernels::cpu
