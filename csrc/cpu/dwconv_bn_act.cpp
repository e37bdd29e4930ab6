// Fused depthwise k x k conv + folded BN + activation (+ SE spatial sums) on the CPU.
// NHWC: at::vec over channel vectors (16 fp32 lanes with AVX-512, 8 with AVX2) in L1-sized channel
// blocks, up to 8 output columns per weight load, parallel over (batch x row tiles); SE sums reduced from per-tile partials. Row loop outside the
// channel blocks, so an output row's k input rows are read once for all channels (stay in L2).
// k and stride (3/5 x 1/2) are compile-time on the fast path: interior columns walk each input column
// once with an advancing pointer (runtime-stride addressing spilled per-tap offsets to the stack).
// NCHW: one (n, c) plane per task, scalar fp32 loops (correct, not the fast path).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "vec.h"

namespace effkernels::cpu {
namespace {

struct Geom {
  int64_t N, C, H, W, OH, OW, stride, pad_t, pad_l, k;
};

// P (8, 4, 2 or 1) output columns starting at ow of one row, channels [c, c + kVec): conv, bias, activation,
// store, and add to the SE partial sums. Each weight vector loaded feeds P FMAs. CHECK: test columns
// against the input (border); FULL: all kVec channels valid. K = 0: k = g.k at run time.
template <typename T, int K, int S, bool FULL, int P, bool CHECK>
inline void pixels(const T* const* rows, const float* wc, int64_t Cp, const float* bc, T* out_c, float* part_c,
                   const Geom& g, int64_t c, int nc, int64_t ow, int act) {
  const int k = K ? K : static_cast<int>(g.k);
  const int64_t stride = S ? S : g.stride;
  // R independent partial sums per column (kernel row kh feeds acc[kh % R]): with few columns a group
  // is a chain of k*k dependent FMAs, latency-bound; R*P >= 8 chains keep both FMA pipes busy.
  constexpr int R = P >= 8 ? 1 : (8 / P < 4 ? 8 / P : 4);
  Vec acc[R][P];
#pragma GCC unroll 8
  for (int i = 0; i < P; ++i) {
    acc[0][i] = Vec::loadu(bc);
#pragma GCC unroll 4
    for (int r = 1; r < R; ++r) acc[r][i] = Vec(0.f);
  }
  const int64_t iw0 = ow * stride - g.pad_l;
  if constexpr (K > 0 && S > 0 && FULL && !CHECK) {
    // Interior columns, compile-time k and stride: walk the P*S+K-1 input columns of each kernel row
    // once with one advancing pointer, loading each column vector once and feeding every (i, kw) tap
    // that reads it. Keeps the K row weights and P accumulators in registers; no per-tap offsets.
#pragma GCC unroll 7
    for (int kh = 0; kh < K; ++kh) {
      if (!rows[kh]) continue;
      Vec wv[K];
#pragma GCC unroll 7
      for (int kw = 0; kw < K; ++kw) wv[kw] = Vec::loadu(wc + (kh * K + kw) * Cp);
      const T* q = rows[kh] + c + iw0 * g.C;
#pragma GCC unroll 64
      for (int j = 0; j < P * S + K - 1; ++j) {
        const Vec v = load_f(q);
        q += g.C;
#pragma GCC unroll 7
        for (int kw = 0; kw < K; ++kw) {
          const int d = j - kw;
          if (d >= 0 && d % S == 0 && d / S < P) acc[kh % R][d / S] = at::vec::fmadd(v, wv[kw], acc[kh % R][d / S]);
        }
      }
    }
  } else {
#pragma GCC unroll 7
    for (int kh = 0; kh < k; ++kh) {
      if (!rows[kh]) continue;
      const T* r = rows[kh] + c;
#pragma GCC unroll 7
      for (int kw = 0; kw < k; ++kw) {
        const Vec wv = Vec::loadu(wc + (kh * k + kw) * Cp);
#pragma GCC unroll 8
        for (int i = 0; i < P; ++i) {
          const int64_t iw = iw0 + i * stride + kw;
          if (CHECK && (iw < 0 || iw >= g.W)) continue;
          const T* q = r + iw * g.C;
          acc[kh % R][i] = at::vec::fmadd(FULL ? load_f(q) : load_f(q, nc), wv, acc[kh % R][i]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < P; ++i) {
#pragma GCC unroll 4
    for (int r = 1; r < R; ++r) acc[0][i] = acc[0][i] + acc[r][i];
  }
  Vec sum(0.f);
#pragma GCC unroll 8
  for (int i = 0; i < P; ++i) {
    const Vec v = act_vec(acc[0][i], act);
    store_f(out_c + (ow + i) * g.C, v, nc);
    sum = sum + v;
  }
  if (part_c) (Vec::loadu(part_c) + sum).store(part_c);
}

// Tasks are (n, row tile). Channels go in blocks of 64 so the input rows a block reads (k rows x a
// few columns x 256 B) and its weights stay in L1 while up to 8 output columns are produced at a time.
template <typename T, int K, int S>
void dw_nhwc(const T* x, T* out, const float* wpk, const float* bpk, float* partial, const Geom& g, int64_t Cp,
             int64_t tiles, int64_t rows_per_tile, int act) {
  constexpr int64_t kBlock = 64;
  const int k = K ? K : static_cast<int>(g.k);
  // Output columns whose whole window lies inside the input: no column checks there.
  const int64_t ow_lo = std::min(g.OW, (g.pad_l + g.stride - 1) / g.stride);
  const int64_t ow_hi = std::max(ow_lo, std::min(g.OW, g.W - k + g.pad_l >= 0 ? (g.W - k + g.pad_l) / g.stride + 1 : 0));
  at::parallel_for(0, g.N * tiles, 1, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t n = u / tiles, tile = u % tiles;
      const int64_t oh0 = tile * rows_per_tile, oh1 = std::min(g.OH, oh0 + rows_per_tile);
      float* part = partial ? partial + u * Cp : nullptr;
      if (part) std::fill(part, part + Cp, 0.f);
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        const T* rows[7];
        for (int kh = 0; kh < k; ++kh) {
          const int64_t ih = oh * g.stride - g.pad_t + kh;
          rows[kh] = (ih >= 0 && ih < g.H) ? x + ((n * g.H + ih) * g.W) * g.C : nullptr;
        }
        T* orow = out + ((n * g.OH + oh) * g.OW) * g.C;
        for (int64_t cb = 0; cb < g.C; cb += kBlock) {
          const int64_t ce = std::min(g.C, cb + kBlock);
          auto run = [&](auto p, auto check, int64_t ow) {
            constexpr int P = decltype(p)::value;
            constexpr bool CHECK = decltype(check)::value;
            for (int64_t c = cb; c < ce; c += kVec) {
              const int nc = static_cast<int>(std::min<int64_t>(kVec, g.C - c));
              float* pc = part ? part + c : nullptr;
              if (nc == kVec) pixels<T, K, S, true, P, CHECK>(rows, wpk + c, Cp, bpk + c, orow + c, pc, g, c, nc, ow, act);
              else pixels<T, K, S, false, P, CHECK>(rows, wpk + c, Cp, bpk + c, orow + c, pc, g, c, nc, ow, act);
            }
          };
          // 8 columns at a time, then 4, 2, 1 (with R partial sums each, see pixels).
          auto group = [&](auto p, int64_t ow) {
            if (ow >= ow_lo && ow + decltype(p)::value <= ow_hi) run(p, std::false_type{}, ow);
            else run(p, std::true_type{}, ow);
          };
          int64_t ow = 0;
          for (; ow + 8 <= g.OW; ow += 8) group(std::integral_constant<int, 8>{}, ow);
          for (; ow + 4 <= g.OW; ow += 4) group(std::integral_constant<int, 4>{}, ow);
          for (; ow + 2 <= g.OW; ow += 2) group(std::integral_constant<int, 2>{}, ow);
          for (; ow < g.OW; ++ow) group(std::integral_constant<int, 1>{}, ow);
        }
      }
    }
  });
}

template <typename T>
void dw_nchw(const T* x, T* out, const float* w, const float* b, float* sums, const Geom& g, int act) {
  const int64_t k = g.k;
  at::parallel_for(0, g.N * g.C, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t plane = p0; plane < p1; ++plane) {
      const int64_t c = plane % g.C;
      const T* xp = x + plane * g.H * g.W;
      T* op = out + plane * g.OH * g.OW;
      const float* wc = w + c * k * k;
      double sum = 0;
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          float acc = b[c];
          for (int64_t kh = 0; kh < k; ++kh) {
            const int64_t ih = oh * g.stride - g.pad_t + kh;
            if (ih < 0 || ih >= g.H) continue;
            for (int64_t kw = 0; kw < k; ++kw) {
              const int64_t iw = ow * g.stride - g.pad_l + kw;
              if (iw >= 0 && iw < g.W) acc += static_cast<float>(xp[ih * g.W + iw]) * wc[kh * k + kw];
            }
          }
          acc = apply_act(acc, act);
          op[oh * g.OW + ow] = static_cast<T>(acc);
          sum += acc;
        }
      }
      if (sums) sums[plane] = static_cast<float>(sum);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> dwconv_bn_act_cpu(const at::Tensor& x_in, const at::Tensor& weight,
                                                     const at::Tensor& bias, int64_t stride, int64_t pad_top,
                                                     int64_t pad_left, int64_t out_h, int64_t out_w,
                                                     int64_t activation, bool se_sums) {
  const int64_t k = check_dwconv_args(x_in, weight, bias, stride, pad_top, pad_left, out_h, out_w, activation);
  check_cpu_capability();
  const at::Tensor x = dense_in_layout(x_in);
  Geom g{x.size(0), x.size(1), x.size(2), x.size(3), out_h, out_w, stride, pad_top, pad_left, k};
  at::Tensor out = empty_in_layout(x, {g.N, g.C, out_h, out_w});
  at::Tensor sums = se_sums ? at::zeros({g.N, g.C}, x.options().dtype(at::kFloat)) : at::empty({0}, x.options().dtype(at::kFloat));
  if (out.numel() == 0) return {out, sums};
  const int act = static_cast<int>(activation);

  if (is_channels_last(x)) {
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
      auto run = [&](auto kconst, auto sconst) {
        dw_nhwc<scalar_t, decltype(kconst)::value, decltype(sconst)::value>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                                                   wpk.const_data_ptr<float>(), bpk.const_data_ptr<float>(),
                                                   se_sums ? partial.mutable_data_ptr<float>() : nullptr, g, Cp, tiles,
                                                   rows_per_tile, act);
      };
      // Stride as a compile-time constant for the B0 shapes: the input column of (output column i, tap
      // kw) is then a constant offset, so overlapping taps share loads and addressing folds away.
      using I3 = std::integral_constant<int, 3>;
      using I5 = std::integral_constant<int, 5>;
      using S1 = std::integral_constant<int, 1>;
      using S2 = std::integral_constant<int, 2>;
      using D = std::integral_constant<int, 0>;
      if (k == 3 && stride == 1) run(I3{}, S1{});
      else if (k == 3 && stride == 2) run(I3{}, S2{});
      else if (k == 5 && stride == 1) run(I5{}, S1{});
      else if (k == 5 && stride == 2) run(I5{}, S2{});
      else if (k == 3) run(I3{}, D{});
      else if (k == 5) run(I5{}, D{});
      else run(D{}, D{});
    });
    if (se_sums) sums.copy_(partial.sum(1).narrow(1, 0, g.C));
  } else {
    const at::Tensor w = f32(weight), b = f32(bias);
    EFFK_DISPATCH_FLOAT(x.scalar_type(), "dwconv_bn_act_cpu", [&] {
      dw_nchw<scalar_t>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), w.const_data_ptr<float>(),
                        b.const_data_ptr<float>(), se_sums ? sums.mutable_data_ptr<float>() : nullptr, g, act);
    });
  }
  return {out, sums};
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CPU, m) { m.impl("dwconv_bn_act", &dwconv_bn_act_cpu); }

}  // namespace effkernels::cpu
