// Fused depthwise k x k conv + folded BN + activation (+ SE spatial sums) on the CPU.
// NHWC: at::vec over channels, weights of one 8-channel vector kept in registers while a row of
// outputs is produced, parallel over (batch x row tiles); SE sums reduced from per-tile partials.
// NCHW: one (n, c) plane per task, scalar fp32 loops (correct, not the fast path).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "vec.h"

namespace effkernels::cpu {
namespace {

struct Geom {
  int64_t N, C, H, W, OH, OW, stride, pad_t, pad_l, k;
};

// K = 0: k taken from g.k at run time (k = 7); K = 3, 5: fully unrolled.
template <typename T, int K>
void dw_nhwc(const T* x, T* out, const float* wpk, const float* bpk, float* partial, const Geom& g, int64_t Cp,
             int64_t tiles, int64_t rows_per_tile, int act) {
  const int k = K ? K : static_cast<int>(g.k);
  at::parallel_for(0, g.N * tiles, 1, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t n = u / tiles, tile = u % tiles;
      const int64_t oh0 = tile * rows_per_tile, oh1 = std::min(g.OH, oh0 + rows_per_tile);
      float* part = partial ? partial + u * Cp : nullptr;
      if (part) std::fill(part, part + Cp, 0.f);
      // Output columns whose whole window lies inside the input: no column checks there.
      const int64_t ow_lo = std::min(g.OW, (g.pad_l + g.stride - 1) / g.stride);
      const int64_t ow_hi = std::max(ow_lo, std::min(g.OW, g.W - k + g.pad_l >= 0 ? (g.W - k + g.pad_l) / g.stride + 1 : 0));
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        const T* rows[K ? K : 7];
        for (int kh = 0; kh < k; ++kh) {
          const int64_t ih = oh * g.stride - g.pad_t + kh;
          rows[kh] = (ih >= 0 && ih < g.H) ? x + ((n * g.H + ih) * g.W) * g.C : nullptr;
        }
        T* orow = out + ((n * g.OH + oh) * g.OW) * g.C;
        for (int64_t c = 0; c < g.C; c += kVec) {
          const int nc = static_cast<int>(std::min<int64_t>(kVec, g.C - c));
          Vec w[K ? K * K : 49];
          for (int t = 0; t < k * k; ++t) w[t] = Vec::loadu(wpk + t * Cp + c);
          const Vec b = Vec::loadu(bpk + c);
          Vec sum(0.f);
          auto pixel = [&](int64_t ow, bool check_cols) {
            const int64_t iw0 = ow * g.stride - g.pad_l;
            Vec acc = b;
            for (int kh = 0; kh < k; ++kh) {
              if (!rows[kh]) continue;
              for (int kw = 0; kw < k; ++kw) {
                const int64_t iw = iw0 + kw;
                if (check_cols && (iw < 0 || iw >= g.W)) continue;
                const T* p = rows[kh] + iw * g.C + c;
                acc = at::vec::fmadd(nc == kVec ? load_f(p) : load_f(p, nc), w[kh * k + kw], acc);
              }
            }
            acc = act_vec(acc, act);
            store_f(orow + ow * g.C + c, acc, nc);
            sum = sum + acc;
          };
          for (int64_t ow = 0; ow < ow_lo; ++ow) pixel(ow, true);
          for (int64_t ow = ow_lo; ow < ow_hi; ++ow) pixel(ow, false);
          for (int64_t ow = ow_hi; ow < g.OW; ++ow) pixel(ow, true);
          if (part) (Vec::loadu(part + c) + sum).store(part + c);
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
      auto run = [&](auto kconst) {
        dw_nhwc<scalar_t, decltype(kconst)::value>(x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                                                   wpk.const_data_ptr<float>(), bpk.const_data_ptr<float>(),
                                                   se_sums ? partial.mutable_data_ptr<float>() : nullptr, g, Cp, tiles,
                                                   rows_per_tile, act);
      };
      if (k == 3) run(std::integral_constant<int, 3>{});
      else if (k == 5) run(std::integral_constant<int, 5>{});
      else run(std::integral_constant<int, 0>{});
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
