// The MBConv block on the CPU (NHWC, BN folded), with the 1x1 convs on weights packed once (gemm.h).
// Two paths for the expand + depthwise part:
//   fused    per task (sample, chunk of expanded channels, band of output rows): the expand GEMM of
//            the input rows the band reads, + bias + activation, goes into fp32 row buffers (L2-resident,
//            padding columns zero), and the depthwise conv + bias + activation + SE partial sums run from
//            them (dw_pixels.h). Small images (the band's rows fit kBandBytes: B0 at 1 thread, 28 px and below)
//            expand all those rows in one GEMM, M = rows x W; larger ones one row at a time into a ring
//            of K rows (M = W, enough rows per GEMM there). The expanded tensor never exists in memory;
//            band edges recompute K - S rows of the expand (tasks split channels first, which costs
//            nothing extra, and rows only when there are too few channel chunks for the threads).
//   unfused  the expand GEMM writes the expanded tensor, then the depthwise kernel (dwconv_bn_act) reads
//            it; the batch runs in chunks of ~4 MiB of expanded activations so it stays in the last-level
//            cache. Blocks without an expand conv always take this path (there is nothing to fuse).
// Then, on both paths: SE excite on the sums (se_excite), and the project GEMM with the SE scale folded
// into a per-sample copy of its weight panels (on AMX panels: into the bf16 copy of its input rows), bias
// and residual in its epilogue.
// Ops: mbconv (plain 1x1 weights, packed per call), mbconv_packed (weights from
// pack_pointwise_weight, the path forced or "auto"), mbconv_path (which path "auto" takes),
// pack_pointwise_weight, pointwise_conv_packed (a 1x1 conv on packed weights: stems' and heads' 1x1s).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <utility>
#include <vector>

#include "../dwconv_bn_act.h"
#include "../mbconv.h"
#include "../op_handle.h"
#include "../se_excite.h"
#include "../static_switch.h"
#include "dw_pixels.h"
#include "gemm.h"
#include "parallel.h"

namespace effkernels::cpu {
namespace {

using at::Tensor;
using OptT = std::optional<Tensor>;

// Rows of A per GEMM task: an A block of about this many bytes (fp32, as the tile reads it) stays in L2 while
// the task's panels pass.
constexpr int64_t kGemmABytes = 128 << 10;
// Fused path: bytes of the ring of K expanded rows per task (fp32), an L2-resident working set.
constexpr int64_t kRingBytes = 128 << 10;
// Fused path: a task whose band's expanded input rows fit this many bytes (fp32) expands them all in one
// GEMM (M = rows x W) instead of row by row through the ring (M = W: at W = 7 a 4 + 3-row tile pair per row).
constexpr int64_t kBandBytes = 256 << 10;
// Unfused path: bytes of expanded activations per batch chunk (kept in the last-level cache). Measured on a
// 2-core Zen 5 (1 MiB L2 per core, 32 MiB L3), B0 batch 8, fp32: 2-8 MiB chunks 36 ms, one sample per
// chunk 48 ms, the whole batch at once 63 ms (min of 18 runs each).
constexpr int64_t kChunkBytes = 4 << 20;

// The largest per-thread sum of cost(u) over the contiguous shares of ceil(tasks / threads) tasks that
// parallel_tasks starts the current threads on (what each runs when no core falls behind).
template <typename Cost>
double max_thread_load(int64_t tasks, const Cost& cost) {
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), tasks), per = (tasks + threads - 1) / threads;
  double worst = 0;
  for (int64_t u0 = 0; u0 < tasks; u0 += per) {
    double load = 0;
    for (int64_t u = u0; u < std::min(tasks, u0 + per); ++u) load += cost(u);
    worst = std::max(worst, load);
  }
  return worst;
}

// Fixed cost of a task in multiply-adds (its setup and a tail of short tiles: ~1 us).
constexpr double kTaskCost = 20000;

// ---- 1x1 conv over NHWC rows --------------------------------------------------------------------------

struct GemmSplit {
  int64_t mblocks, mc, per_group, groups;  // row blocks of mc rows per sample; panel groups of per_group panels
  // Task order. Fewer samples than threads and many rows per panel column: row blocks outermost, so each thread's
  // share is a band of rows, the rows its fused tasks of the next block read (fused_plan's bands), not lines
  // another core wrote; else panel groups outermost (consecutive tasks share their panels, and a thread reads
  // only its groups' share of the weight: B0's 7x7 projects, whose weights outweigh their rows).
  bool rows_outer;
  // Task u of N * mblocks * groups -> (row block over all samples, panel group).
  std::pair<int64_t, int64_t> task(int64_t u, int64_t N) const {
    if (rows_outer) return {u / groups, u % groups};
    return {u % (N * mblocks), u / (N * mblocks)};
  }
};

// Tasks (group of panels, sample, block of rows: consecutive tasks share their panels) for an [N, M] x K GEMM
// of P panels: at least min_blocks row blocks (A blocks of kGemmABytes), the split whose largest per-thread
// share of multiply-adds (plus the per-panel SE scaling when `scaled`; max_thread_load) is least. With few row blocks (batch 1 at 7-14 px)
// the fixed rule "4 tasks a thread" left one of 2 threads with 13 of 21 panel-rows (B0's 7x7 project).
GemmSplit gemm_split(int64_t N, int64_t M, int64_t K, int64_t P, int64_t min_blocks, bool scaled) {
  const int64_t T = at::get_num_threads();
  auto rows_per = [&](int64_t mb) { return ((M + mb - 1) / mb + kMR - 1) / kMR * kMR; };
  const bool rows_outer = N < T && M >= 8 * P * kNR;
  GemmSplit best{(M + rows_per(min_blocks) - 1) / rows_per(min_blocks), rows_per(min_blocks), P, 1, rows_outer};
  if (T == 1 || N * min_blocks >= 16 * T) return best;  // many row blocks: any split is even enough
  double best_load = -1;
  for (int64_t mb = min_blocks; mb <= std::min(2 * min_blocks + T, (M + kMR - 1) / kMR); ++mb) {
    const int64_t mc = rows_per(mb), blocks = (M + mc - 1) / mc;
    for (int64_t g = 1; g <= std::min(P, 4 * T); ++g) {
      const int64_t per = (P + g - 1) / g, groups = (P + per - 1) / per;
      const GemmSplit split{blocks, mc, per, groups, rows_outer};
      const double load = max_thread_load(N * blocks * groups, [&](int64_t u) {
        const auto [rb, gi] = split.task(u, N);
        const int64_t r = rb % blocks;
        const double rows = static_cast<double>(std::min(M, (r + 1) * mc) - r * mc);
        const double panels = static_cast<double>(std::min(P, (gi + 1) * per) - gi * per);
        return panels * K * kNR * (rows + (scaled ? 1 : 0)) + kTaskCost;
      });
      if (best_load < 0 || load < best_load) best_load = load, best = split;
    }
  }
  return best;
}

// Vector j of row i of a GEMM tile (bias added) -> act, + the residual r, into o: row stride c_out, the
// tile's first cols (<= kNR) columns.
template <typename T>
EFFK_INLINE void gemm_epilogue(Vec v, int64_t i, int j, T* o, const T* r, int64_t c_out, int64_t cols, int act) {
  const int64_t c = j * kVec;
  if (c >= cols) return;
  const int nc = static_cast<int>(std::min<int64_t>(kVec, cols - c));
  v = act_vec(v, act);
  if (r) v = v + (nc == kVec ? load_f(r + i * c_out + c) : load_f(r + i * c_out + c, nc));
  store_f(o + i * c_out + c, v, nc);
}

// gemm_epilogue over `rows` rows of a tile stored as fp32 (kNR per row).
template <typename T>
EFFK_NOINLINE void gemm_epilogue_rows(const float* t, int64_t rows, T* o, const T* r, int64_t c_out, int64_t cols,
                                      int act) {
  for (int64_t i = 0; i < rows; ++i)
    for (int j = 0; j < 2; ++j) gemm_epilogue(Vec::loadu(t + i * kNR + j * kVec), i, j, o, r, c_out, cols, act);
}

// out[n, m, :] = act(A[n, m, :] @ (W * scale[n])^T + bias) + R[n, m, :] for A [N, M, K] rows (NHWC pixels),
// W packed (Panels), out and R [N, M, c_out]. Tasks: gemm_split's.
template <typename T>
void gemm_nhwc(const T* A, int64_t N, int64_t M, int64_t K, const Panels& w, const T* bias, int64_t c_out,
               const float* scale, T* out, const T* R, int act) {
  const int64_t P = panels_of(c_out);
  const int64_t mc_max = std::max<int64_t>(kMR, kGemmABytes / (K * int64_t{sizeof(float)}) / kMR * kMR);
  const GemmSplit split = gemm_split(N, M, K, P, (M + mc_max - 1) / mc_max, scale != nullptr);
  const int64_t mblocks = split.mblocks, rb = N * mblocks, mc = split.mc, per_group = split.per_group,
                groups = split.groups;
  std::vector<float> bias_pad(P * kNR);
  for (int64_t p = 0; p < P; ++p) panel_bias(bias, c_out, p, bias_pad.data() + p * kNR);
  parallel_tasks(rb * groups, [&](auto&& next) {
    std::vector<float> scaled(scale && w.f32 ? K * kNR : 0), a_f32, o_f32;
    std::vector<bf16> a_bf16;
    for (int64_t u; (u = next()) >= 0;) {
      const auto [r, g] = split.task(u, N);
      const int64_t n = r / mblocks;
      const int64_t m0 = (r % mblocks) * mc, rows = std::min(M, m0 + mc) - m0;
      T* o = out + (n * M + m0) * c_out;
      const T* res = R ? R + (n * M + m0) * c_out : nullptr;
#if EFFK_AMX
      if constexpr (std::is_same_v<T, bf16>) {
        if (w.amx) {  // the SE scale goes into the bf16 copy of A
          const bf16* a = rows_as_amx(A + (n * M + m0) * K, rows, K, scale ? scale + n * K : nullptr, a_bf16);
          for (int64_t p = g * per_group; p < std::min(P, (g + 1) * per_group); ++p) {
            const int64_t cols = std::min<int64_t>(kNR, c_out - p * kNR);
            amx_rows_x_panel(a, rows, amx_k(K), w.amx_panel(p), bias_pad.data() + p * kNR,
                             [&](int64_t i0, int64_t n_rows, const float* t) {
                               gemm_epilogue_rows(t, n_rows, o + i0 * c_out + p * kNR,
                                                  res ? res + i0 * c_out + p * kNR : nullptr, c_out, cols, act);
                             });
          }
          continue;
        }
      }
#endif
      const float* a = rows_as_f32(A + (n * M + m0) * K, rows * K, a_f32);
      for (int64_t p = g * per_group; p < std::min(P, (g + 1) * per_group); ++p) {
        const float* panel = w.f32_panel(p);
        if (scale) {  // the SE scale of sample n on the panel's input channels
          const float* s = scale + n * K;
          for (int64_t k = 0; k < K; ++k)
            for (int j = 0; j < kNR; j += kVec)
              (Vec::loadu(panel + k * kNR + j) * Vec(s[k])).store(scaled.data() + k * kNR + j);
          panel = scaled.data();
        }
        T* op = o + p * kNR;
        const T* rp = res ? res + p * kNR : nullptr;
        const int64_t cols = std::min<int64_t>(kNR, c_out - p * kNR);
        const float* pbias = bias_pad.data() + p * kNR;
        if constexpr (std::is_same_v<T, float>) {
          rows_x_panel(a, K, rows, K, panel, pbias, [&](int64_t i, int j, Vec v) EFFK_LAMBDA_INLINE {
            gemm_epilogue(v, i, j, op, rp, c_out, cols, act);
          });
        } else {
          // With a 16-bit epilogue inlined after it, gcc spilled the tile's accumulators to the stack inside the
          // k loop (perf annotate; B0's project shapes took 2.7-3x fp32's time): the tile stores fp32, and the
          // epilogue runs over that in a function of its own.
          o_f32.resize(rows * kNR);
          rows_x_panel(a, K, rows, K, panel, pbias, [&](int64_t i, int j, Vec v) EFFK_LAMBDA_INLINE {
            v.store(o_f32.data() + i * kNR + j * kVec);
          });
          gemm_epilogue_rows(o_f32.data(), rows, op, rp, c_out, cols, act);
        }
      }
    }
  });
}

// A packed weight (check_packed's) as the kernels read it.
Panels panels(const Tensor& wp, int64_t K) {
  if (wp.scalar_type() == at::kBFloat16) return {nullptr, wp.const_data_ptr<bf16>(), K};
  return {wp.const_data_ptr<float>(), nullptr, K};
}

// x NHWC-dense; returns [N, c_out, H, W] channels_last: `into` when given (that shape, NHWC-dense), else a new
// tensor.
Tensor pointwise(const Tensor& x, const Tensor& wp, const Tensor& bias, int act, const OptT& scale,
                 const Tensor* residual, const OptT& into = std::nullopt) {
  const int64_t N = x.size(0), K = x.size(1), M = x.size(2) * x.size(3), c_out = bias.size(0);
  Tensor out = into ? *into : at::empty({N, c_out, x.size(2), x.size(3)}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (out.numel() == 0) return out;
  const Tensor b = bias.to(x.scalar_type()).contiguous();
  const Tensor s = scale ? scale->contiguous() : Tensor();
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "pointwise_packed_cpu", [&] {
    gemm_nhwc<scalar_t>(x.const_data_ptr<scalar_t>(), N, M, K, panels(wp, K), b.const_data_ptr<scalar_t>(),
                        c_out, scale ? s.const_data_ptr<float>() : nullptr, out.mutable_data_ptr<scalar_t>(),
                        residual ? residual->const_data_ptr<scalar_t>() : nullptr, act);
  });
  return out;
}

// ---- fused expand + depthwise --------------------------------------------------------------------------

struct Geom {
  int64_t N, Cin, C, H, W, OH, OW, pad_t, pad_l;
};

struct FusedPlan {
  int64_t cc;     // expanded channels per chunk, a multiple of kNR
  int64_t chunks, bands, rows;  // rows: output rows per band
  int64_t band_in;  // input rows a band reads at most; > 0: a task expands them at once (kBandBytes), 0: ring
  // Task u of N * chunks * bands -> (sample, band, chunk), chunks innermost: a thread's share is whole bands of
  // rows (with fewer samples than threads fused_plan makes at least one band a thread on tall images), which the
  // previous block's project wrote on that thread (GemmSplit::rows_outer) and which its project reads back.
  std::array<int64_t, 3> task(int64_t u) const { return {u / (chunks * bands), u / chunks % bands, u % chunks}; }
};

// Tasks (sample, chunk of cc expanded channels, band of output rows) for the fused path. Candidates: every
// chunk count from the ring's byte bound up by 4 per thread (cc a multiple of kNR) with 1 to 4 per thread
// bands; the one whose largest per-thread share of multiply-adds (expand of the band's input rows, halo
// included, + depthwise taps; max_thread_load) is least. A fixed "4 tasks a thread" rule gave 5 uneven chunks
// of B0's 144 channels to 2 threads (80 vs 64 channel-bands). Many samples: that rule, already even. Fewer
// samples than threads on a tall image: at least one band a thread, so a thread reads the rows it wrote
// (FusedPlan::task).
FusedPlan fused_plan(int64_t N, int64_t Cin, int64_t C, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t Wp,
                     int64_t K, int64_t S) {
  const int64_t T = at::get_num_threads(), want = 4 * T;
  const int64_t by_bytes = std::max<int64_t>(kNR, kRingBytes / (K * Wp * int64_t{sizeof(float)}) / kNR * kNR);
  auto make = [&](int64_t cc, int64_t bands) -> FusedPlan {
    const int64_t rows = (OH + bands - 1) / bands, band_in = std::min(H, (rows - 1) * S + K);
    const bool whole = band_in * cc * Wp * int64_t{sizeof(float)} <= kBandBytes;
    return {cc, (C + cc - 1) / cc, (OH + rows - 1) / rows, rows, whole ? band_in : 0};
  };
  const int64_t want_chunks = (want + N - 1) / N;
  const int64_t cc0 = std::clamp<int64_t>(((C + want_chunks - 1) / want_chunks + kNR - 1) / kNR * kNR, kNR, by_bytes);
  FusedPlan best = make(cc0, std::clamp<int64_t>((want + N * ((C + cc0 - 1) / cc0) - 1) / (N * ((C + cc0 - 1) / cc0)), 1, OH));
  const int64_t min_chunks = (C + by_bytes - 1) / by_bytes;
  // Row-affine shares (FusedPlan::task) where the bands' halo (K - S input rows per extra band, expanded twice)
  // adds at most 1/8 to the expand: at 14 px and below the halo cost more than the traffic saved.
  const int64_t per_sample = (T + N - 1) / N;
  const int64_t min_bands = N < T && (K - S) * (per_sample - 1) * 8 <= H ? per_sample : 1;
  if (T == 1 || N * min_chunks >= 4 * want) return best;
  double best_load = -1;
  for (int64_t ch = min_chunks, last_cc = 0; ch <= std::min(min_chunks + want, panels_of(C)); ++ch) {
    const int64_t cc = std::min(by_bytes, ((C + ch - 1) / ch + kNR - 1) / kNR * kNR);
    if (cc == last_cc) continue;
    last_cc = cc;
    for (int64_t b = std::min(OH, min_bands); b <= std::min(OH, std::max(want, min_bands)); ++b) {
      const FusedPlan plan = make(cc, b);
      const double load = max_thread_load(N * plan.chunks * plan.bands, [&](int64_t u) {
        const auto [n, band, chunk] = plan.task(u);
        const double width = static_cast<double>(std::min(cc, C - chunk * cc));
        const int64_t out_rows = std::min(OH, (band + 1) * plan.rows) - band * plan.rows;
        const int64_t in_rows = std::min(H, (out_rows - 1) * S + K);
        return width * static_cast<double>(in_rows * W * Cin + out_rows * OW * K * K) + kTaskCost;
      });
      if (best_load < 0 || load < best_load) best_load = load, best = plan;
    }
  }
  return best;
}

// x NHWC [N, H, W, Cin]; ew the packed expand weights (Panels), ebias fp32 panels_of(C) * kNR; wpk/bpk the
// depthwise weights [K*K, Cp] and bias [Cp] in fp32; d NHWC [N, OH, OW, C]; partial [tasks, cc] SE sums.
template <typename T, int K, int S>
void fused_expand_dw(const T* x, const Geom& g, const Panels& ew, const float* ebias, const float* wpk,
                     const float* bpk, int64_t Cp, T* d, float* partial, const FusedPlan& plan, int act) {
  const int64_t Wp = std::max(g.W + g.pad_l, (g.OW - 1) * S + K);
  const int64_t slot = plan.cc * Wp;  // floats: cc / kVec channel vectors of Wp columns
  // Where expanded input row i of a GEMM (input rows of a band, or one row: i < W) goes: row i / W of the
  // buffer, column i % W; a table so the store does no division.
  std::vector<int64_t> at_row(std::max<int64_t>(plan.band_in, 1) * g.W);
  for (int64_t i = 0; i < static_cast<int64_t>(at_row.size()); ++i)
    at_row[i] = i / g.W * slot + (i % g.W + g.pad_l) * kVec;
  parallel_tasks(g.N * plan.chunks * plan.bands, [&](auto&& next) {
    RowRing<K, S> ring(plan.band_in ? 0 : slot);
    std::vector<float> band_buf(plan.band_in * slot, 0.f), a_f32;
    std::vector<bf16> a_bf16;
    for (int64_t u; (u = next()) >= 0;) {
      const auto [n, band, chunk] = plan.task(u);
      const int64_t c0 = chunk * plan.cc, cc = std::min(plan.cc, g.C - c0);
      const int64_t p0 = c0 / kNR, np = panels_of(cc), nv = (cc + kVec - 1) / kVec;
      const int64_t oh0 = band * plan.rows, oh1 = std::min(g.OH, oh0 + plan.rows);
      float* part = partial ? partial + u * plan.cc : nullptr;
      if (part) std::fill(part, part + plan.cc, 0.f);
      // Expands input rows [ih, ih + nrows) into buffer slots of `slot` floats from buf: vector v of column w
      // at (v * Wp + w) * kVec in its row's slot.
      auto expand = [&](float* buf, int64_t ih, int64_t nrows) {
        const T* src = x + (n * g.H + ih) * g.W * g.Cin;
#if EFFK_AMX
        if constexpr (std::is_same_v<T, bf16>) {
          if (ew.amx) {
            const bf16* a = rows_as_amx(src, nrows * g.W, g.Cin, nullptr, a_bf16);
            for (int64_t p = 0; p < np; ++p) {
              float* dst = buf + 2 * p * Wp * kVec;
              amx_rows_x_panel(a, nrows * g.W, amx_k(g.Cin), ew.amx_panel(p0 + p), ebias + (p0 + p) * kNR,
                               [&](int64_t i0, int64_t n_rows, const float* t) {
                                 for (int64_t i = 0; i < n_rows; ++i)
                                   for (int j = 0; j < 2; ++j)
                                     act_vec(Vec::loadu(t + i * kNR + j * kVec), act)
                                         .store(dst + at_row[i0 + i] + j * Wp * kVec);
                               });
            }
            return;
          }
        }
#endif
        const float* a = rows_as_f32(src, nrows * g.W * g.Cin, a_f32);
        for (int64_t p = 0; p < np; ++p) {
          float* dst = buf + 2 * p * Wp * kVec;
          rows_x_panel(a, g.Cin, nrows * g.W, g.Cin, ew.f32_panel(p0 + p), ebias + (p0 + p) * kNR,
                       [&](int64_t i, int j, Vec v) EFFK_LAMBDA_INLINE {
                         act_vec(v, act).store(dst + at_row[i] + j * Wp * kVec);
                       });
        }
      };
      const int64_t ih0 = std::max<int64_t>(0, oh0 * S - g.pad_t);
      if (plan.band_in) expand(band_buf.data(), ih0, std::min(g.H, (oh1 - 1) * S - g.pad_t + K) - ih0);
      ring.reset();
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        const float* rows[K];
        if (plan.band_in) {
          for (int kh = 0; kh < K; ++kh) {
            const int64_t ih = oh * S - g.pad_t + kh;
            rows[kh] = ih >= 0 && ih < g.H ? band_buf.data() + (ih - ih0) * slot : nullptr;
          }
        } else {
          ring.rows_for(oh, g.pad_t, g.H, rows, [&](float* buf, int64_t ih) { expand(buf, ih, 1); });
        }
        T* orow = d + (n * g.OH + oh) * g.OW * g.C;
        for (int64_t cv = 0; cv < nv; ++cv) {
          const int64_t c = c0 + cv * kVec;
          const int nc = static_cast<int>(std::min<int64_t>(kVec, g.C - c));
          column_groups(0, g.OW, [&](auto pc, int64_t ow) {
            constexpr int P = decltype(pc)::value;
            const float* r[K];
            for (int kh = 0; kh < K; ++kh) r[kh] = rows[kh] ? rows[kh] + (cv * Wp + ow * S) * kVec : nullptr;
            pixels<T, K, S, P>(r, kVec, wpk + c, Cp, bpk + c, orow + ow * g.C + c, g.C, part ? part + cv * kVec : nullptr,
                               nc, act);
          });
        }
      }
    }
  });
}

// Depthwise weights [C, 1, k, k] and bias [C] -> fp32 [k*k, Cp] and [Cp], zero past C.
void pack_dw(const Tensor& w, const Tensor& b, int64_t Cp, std::vector<float>& wpk, std::vector<float>& bpk) {
  const int64_t C = w.size(0), kk = w.size(2) * w.size(3);
  const Tensor wf = w.to(at::kFloat).contiguous(), bf = b.to(at::kFloat).contiguous();
  const float* pw = wf.const_data_ptr<float>();
  wpk.assign(kk * Cp, 0.f);
  bpk.assign(Cp, 0.f);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < kk; ++t) wpk[t * Cp + c] = pw[c * kk + t];
  std::copy(bf.const_data_ptr<float>(), bf.const_data_ptr<float>() + C, bpk.begin());
}

// The depthwise weights and bias as fp32 [k*k, Cp] and [Cp] (zero past C): the tensors' own storage when they are
// that already (fp32, the weight tap-major as FoldedModule._prepare lays it out, C a multiple of kVec), else packed
// into wbuf / bbuf (per call: ~0.3 ms of a 1-thread B0 batch-1 forward, perf record).
std::pair<const float*, const float*> dw_tap_major(const Tensor& w, const Tensor& b, int64_t Cp, std::vector<float>& wbuf,
                                                   std::vector<float>& bbuf) {
  const int64_t C = w.size(0), k = w.size(2);
  if (Cp == C && w.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && b.is_contiguous() &&
      w.stride(0) == 1 && w.stride(2) == k * C && w.stride(3) == C)
    return {w.const_data_ptr<float>(), b.const_data_ptr<float>()};
  pack_dw(w, b, Cp, wbuf, bbuf);
  return {wbuf.data(), bbuf.data()};
}

// (d, fp32 [N, C] SE sums or an empty tensor) for x NHWC-dense.
std::tuple<Tensor, Tensor> expand_dw_fused(const Tensor& x, const Tensor& ewp, const Tensor& eb, const Tensor& dw_w,
                                           const Tensor& dw_b, int64_t S, int64_t pad_t, int64_t pad_l, int64_t OH,
                                           int64_t OW, int act, bool se) {
  const int64_t K = dw_w.size(2);
  const Geom g{x.size(0), x.size(1), dw_w.size(0), x.size(2), x.size(3), OH, OW, pad_t, pad_l};
  Tensor d = at::empty({g.N, g.C, OH, OW}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  Tensor sums = se ? at::zeros({g.N, g.C}, x.options().dtype(at::kFloat)) : at::empty({0}, x.options().dtype(at::kFloat));
  if (d.numel() == 0) return {d, sums};
  const int64_t Cp = (g.C + kVec - 1) / kVec * kVec;
  std::vector<float> wbuf, bbuf, ebias(panels_of(g.C) * kNR);
  const std::pair<const float*, const float*> dw = dw_tap_major(dw_w, dw_b, Cp, wbuf, bbuf);
  const int64_t Wp = std::max(g.W + pad_l, (OW - 1) * S + K);
  const FusedPlan plan = fused_plan(g.N, g.Cin, g.C, g.H, g.W, OH, OW, Wp, K, S);
  std::vector<float> partial(se ? g.N * plan.chunks * plan.bands * plan.cc : 0);
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "mbconv_fused_cpu", [&] {
    const Tensor ebt = eb.to(x.scalar_type()).contiguous();
    for (int64_t p = 0; p < panels_of(g.C); ++p) panel_bias(ebt.const_data_ptr<scalar_t>(), g.C, p, ebias.data() + p * kNR);
    dw_static_switch(K, S, [&](auto kc, auto sc) {
      fused_expand_dw<scalar_t, decltype(kc)::value, decltype(sc)::value>(
          x.const_data_ptr<scalar_t>(), g, panels(ewp, g.Cin), ebias.data(), dw.first, dw.second, Cp,
          d.mutable_data_ptr<scalar_t>(), se ? partial.data() : nullptr, plan, act);
    });
  });
  if (se) {
    float* s = sums.mutable_data_ptr<float>();
    for (int64_t u = 0; u < g.N * plan.chunks * plan.bands; ++u) {
      const auto [n, band, chunk] = plan.task(u);
      const int64_t c0 = chunk * plan.cc;
      for (int64_t j = 0; j < std::min(plan.cc, g.C - c0); ++j) s[n * g.C + c0 + j] += partial[u * plan.cc + j];
    }
  }
  return {d, sums};
}

// ---- the block -------------------------------------------------------------------------------------------

enum class Path { Fused, Unfused };

// Which path "auto" takes for a block with input [n, c_in, h, w], c_exp expanded channels, a k x k depthwise
// conv of stride s, at the current thread count. Measured (2026-11-30, 2-core AMD EPYC, AVX2, fp32, 1 thread,
// CPU time, median of interleaved reps, every expand block of B0 at 224 px): fused is faster on 13 of 15
// blocks at batch 1 (1.04-2.1x; sum 19.6 vs 25.8 ms) and ties the rest (the 7x7 ones, 0.99x); at batch 8
// faster on 11, within 2% on the 7x7 ones and 0.92x on one 14x14 block (sum 180 vs 242 ms). Two-thread
// figures were not usable (load average 7 on 2 cores). So: fused whenever there is an expand conv; the
// shape is an argument so a rule measured on other CPUs can use it.
Path choose_path(int64_t n, int64_t c_in, int64_t h, int64_t w, int64_t c_exp, int64_t k, int64_t s,
                 bool has_expand) {
  (void)n, (void)c_in, (void)h, (void)w, (void)c_exp, (void)k, (void)s;
  return has_expand ? Path::Fused : Path::Unfused;
}

Path choose_path(const Tensor& x, const Tensor& dw_w, int64_t stride, bool has_expand) {
  return choose_path(x.size(0), x.size(1), x.size(2), x.size(3), dw_w.size(0), dw_w.size(2), stride, has_expand);
}

const char* path_name(Path p) { return p == Path::Fused ? "fused" : "unfused"; }

// Checks what the packed block reads beyond check_mbconv_args; returns C_exp.
int64_t check_block(const Tensor& x, const OptT& ewp, const OptT& eb, const Tensor& dw_w, const Tensor& dw_b,
                    int64_t stride, int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, const OptT& se_w1,
                    const OptT& se_b1, const OptT& se_w2, const OptT& se_b2, const Tensor& pwp, const Tensor& pb,
                    bool residual, int64_t activation, int64_t se_activation, int64_t se_gate) {
  EFFK_CHECK_ARG(pb.dim() == 1, "proj_b", "expected a 1-d bias [C_out], got shape ", pb.sizes());
  check_mbconv_args(x, ewp, eb, se_w1, se_b1, se_w2, se_b2, pb.size(0), residual, out_h, out_w);
  const int64_t c_exp = dw_w.dim() == 4 ? dw_w.size(0) : -1;
  EFFK_CHECK_ARG(c_exp >= 1, "dw_w", "expected shape [C_exp, 1, k, k], got ", dw_w.sizes());
  check_depthwise(x, c_exp, "C_exp = dw_w.shape[0]", dw_w, "dw_w", dw_b, "dw_b", stride, pad_top, pad_left, out_h,
                  out_w, activation);
  if (ewp) {
    check_param(*eb, "expand_b", {c_exp}, x);
  } else {
    EFFK_CHECK_ARG(c_exp == x.size(1), "dw_w", "expected C_exp = C_in = ", x.size(1), " (no expand conv), got ", c_exp);
  }
  if (se_w1) {
    const int64_t s = se_w1->dim() == 2 ? se_w1->size(0) : -1;
    EFFK_CHECK_ARG(s >= 1, "se_w1", "expected shape [S, ", c_exp, "], got ", se_w1->sizes());
    check_param(*se_w1, "se_w1", {s, c_exp}, x);
    check_param(*se_b1, "se_b1", {s}, x);
    check_param(*se_w2, "se_w2", {c_exp, s}, x);
    check_param(*se_b2, "se_b2", {c_exp}, x);
    check_act_code(se_activation, "se_activation");
    check_act_code(se_gate, "se_gate");
  }
  check_param(pb, "proj_b", {pb.size(0)}, x);
  return c_exp;
}

// wp: fp32 panels of a [c_out, k] matrix, or (for a bf16 x, where AMX runs) its AMX panels.
void check_packed(const Tensor& wp, const char* name, int64_t k, int64_t c_out, const Tensor& x) {
  if (wp.scalar_type() == at::kBFloat16 && wp.dim() == 4) {
    EFFK_CHECK_ARG(amx_bf16_usable(), name, "holds AMX panels (pack_pointwise_weight of a bf16 weight on a CPU with "
                   "AMX), which this CPU or build cannot run: pack the weight here");
    EFFK_CHECK_ARG(x.scalar_type() == at::kBFloat16, name, "holds AMX panels, which take bf16 inputs: got x ",
                   x.scalar_type(), " (pack a weight of x's dtype)");
    EFFK_CHECK_ARG(wp.size(0) == panels_of(c_out) && wp.size(1) == amx_k(k) / 2 && wp.size(2) == kNR &&
                       wp.size(3) == 2 && wp.is_contiguous() && wp.is_cpu(),
                   name, "expected the AMX panels of a [", c_out, ", ", k, "] matrix (contiguous bf16 [",
                   panels_of(c_out), ", ", amx_k(k) / 2, ", ", kNR, ", 2] on the CPU), got ", wp.sizes());
    return;
  }
  EFFK_CHECK_ARG(wp.dim() == 3 && wp.size(0) == panels_of(c_out) && wp.size(1) == k && wp.size(2) == kNR &&
                     wp.scalar_type() == at::kFloat && wp.is_contiguous() && wp.is_cpu(),
                 name, "expected weights from effkernels::pack_pointwise_weight of a [", c_out, ", ", k,
                 "] matrix (contiguous fp32 [", panels_of(c_out), ", ", k, ", ", kNR, "] on the CPU), got ",
                 wp.scalar_type(), " ", wp.sizes());
}

Tensor block(const Tensor& x_in, const OptT& ewp, const OptT& eb, const Tensor& dw_w, const Tensor& dw_b,
             int64_t stride, int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, const OptT& se_w1,
             const OptT& se_b1, const OptT& se_w2, const OptT& se_b2, const Tensor& pwp, const Tensor& pb,
             bool residual, int64_t activation, int64_t se_activation, int64_t se_gate, Path path) {
  static const auto dwconv = op_handle<std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t,
                                                                  int64_t, int64_t, int64_t, int64_t, bool)>("effkernels::dwconv_bn_act");
  check_cpu_capability();
  const bool se = se_w1.has_value();
  const int act = static_cast<int>(activation);
  // NHWC kernels: an NCHW x runs the block in channels_last and the result goes back to x's layout (two passes
  // over the narrow tensors).
  const Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  auto tail = [&](const Tensor& xs, const Tensor& d, const Tensor& sums, const OptT& into) {
    OptT scale;
    if (se) scale = se_excite_unchecked(sums, 1.0 / static_cast<double>(out_h * out_w), *se_w1, *se_b1, *se_w2, *se_b2,
                                        se_activation, se_gate);
    return pointwise(d, pwp, pb, static_cast<int>(Act::None), scale, residual ? &xs : nullptr, into);
  };
  if (path == Path::Fused) {
    auto [d, sums] = expand_dw_fused(x, *ewp, *eb, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, act, se);
    return in_layout_of(tail(x, d, sums, std::nullopt), x_in);
  }
  auto run = [&](const Tensor& xs, const OptT& into) {
    const Tensor h = ewp ? pointwise(xs, *ewp, *eb, act, std::nullopt, nullptr) : xs;
    auto [d, sums] = dwconv.call(h, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, activation, se);
    return tail(xs, d, sums, into);
  };
  const int64_t c_exp = dw_w.size(0);
  const int64_t per_sample = c_exp * std::max(x.size(2) * x.size(3), out_h * out_w) * x.element_size();
  int64_t chunk = std::clamp<int64_t>(kChunkBytes / std::max<int64_t>(per_sample, 1), 1, std::max<int64_t>(x.size(0), 1));
  const int64_t chunks = (x.size(0) + chunk - 1) / chunk;
  chunk = chunks ? (x.size(0) + chunks - 1) / chunks : 1;  // as even as possible: 8 samples in 4 + 4, not 7 + 1
  if (chunk >= x.size(0)) return in_layout_of(run(x, std::nullopt), x_in);
  Tensor out = at::empty({x.size(0), pb.size(0), out_h, out_w}, x.options().memory_format(layout_of(x_in)));
  for (int64_t n0 = 0; n0 < x.size(0); n0 += chunk) {
    const int64_t n = std::min(chunk, x.size(0) - n0);
    Tensor part = out.narrow(0, n0, n);
    // An NHWC output's chunk is NHWC-dense: the project writes it there (a copy took 0.8 ms of a 30 ms B0 bf16
    // batch-8 forward, its first block's).
    if (part.is_contiguous(at::MemoryFormat::ChannelsLast)) run(x.narrow(0, n0, n), part);
    else part.copy_(run(x.narrow(0, n0, n), std::nullopt));
  }
  return out;
}

// ---- ops -------------------------------------------------------------------------------------------------

Tensor pack_pointwise_weight(const Tensor& w) {
  EFFK_CHECK_ARG(w.dim() == 2 && w.size(0) >= 1 && w.size(1) >= 1, "weight",
                 "expected a 2-d 1x1-conv weight [C_out, C_in], got shape ", w.sizes());
  EFFK_CHECK_ARG(is_float(w), "weight", expected_float, ", got ", w.scalar_type());
  return pack_weight(w);
}

Tensor pointwise_conv_packed(const Tensor& x_in, const Tensor& wp, const Tensor& bias, int64_t activation,
                             const OptT& scale, const OptT& residual) {
  check_activation_tensor(x_in, "x");
  EFFK_CHECK_ARG(bias.dim() == 1, "bias", "expected a 1-d bias [C_out], got shape ", bias.sizes());
  const int64_t c_out = bias.size(0);
  check_param(bias, "bias", {c_out}, x_in);
  check_packed(wp, "weight", x_in.size(1), c_out, x_in);
  check_act_code(activation, "activation");
  if (scale) check_scale(*scale, x_in, x_in.size(1));
  if (residual) {
    EFFK_CHECK_ARG(residual->sizes() == at::IntArrayRef({x_in.size(0), c_out, x_in.size(2), x_in.size(3)}) &&
                       residual->scalar_type() == x_in.scalar_type() && residual->is_cpu(),
                   "residual", "expected ", x_in.scalar_type(), " [", x_in.size(0), ", ", c_out, ", ", x_in.size(2), ", ",
                   x_in.size(3), "] on the CPU (the output's), got ", residual->scalar_type(), " ", residual->sizes());
  }
  check_cpu_capability();
  const Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const Tensor r = residual ? residual->contiguous(at::MemoryFormat::ChannelsLast) : Tensor();
  return in_layout_of(pointwise(x, wp, bias, static_cast<int>(activation), scale, residual ? &r : nullptr), x_in);
}

Path parse_path(c10::string_view path, const Tensor& x, const Tensor& dw_w, int64_t stride, bool has_expand) {
  if (path == "auto") return choose_path(x, dw_w, stride, has_expand);
  if (path == "fused") {
    EFFK_CHECK_ARG(has_expand, "path", "\"fused\" computes the expand conv inside the depthwise kernel: it needs expand_w");
    return Path::Fused;
  }
  EFFK_CHECK_ARG(path == "unfused", "path", "expected \"auto\", \"fused\" or \"unfused\", got \"", path, "\"");
  return Path::Unfused;
}

Tensor mbconv_packed(const Tensor& x, const OptT& ewp, const OptT& eb, const Tensor& dw_w, const Tensor& dw_b,
                     int64_t stride, int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, const OptT& se_w1,
                     const OptT& se_b1, const OptT& se_w2, const OptT& se_b2, const Tensor& pwp, const Tensor& pb,
                     bool residual, int64_t activation, int64_t se_activation, int64_t se_gate, c10::string_view path) {
  const int64_t c_exp = check_block(x, ewp, eb, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, se_w1, se_b1, se_w2,
                                    se_b2, pwp, pb, residual, activation, se_activation, se_gate);
  if (ewp) check_packed(*ewp, "expand_w", x.size(1), c_exp, x);
  check_packed(pwp, "proj_w", c_exp, pb.size(0), x);
  return block(x, ewp, eb, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, se_w1, se_b1, se_w2, se_b2, pwp, pb,
               residual, activation, se_activation, se_gate, parse_path(path, x, dw_w, stride, ewp.has_value()));
}

Tensor mbconv_cpu(const Tensor& x, const OptT& expand_w, const OptT& expand_b, const Tensor& dw_w, const Tensor& dw_b,
                  int64_t stride, int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, const OptT& se_w1,
                  const OptT& se_b1, const OptT& se_w2, const OptT& se_b2, const Tensor& proj_w, const Tensor& proj_b,
                  bool residual, int64_t activation, int64_t se_activation, int64_t se_gate) {
  const int64_t c_exp = check_block(x, expand_w, expand_b, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, se_w1,
                                    se_b1, se_w2, se_b2, proj_w, proj_b, residual, activation, se_activation, se_gate);
  if (expand_w) check_param(*expand_w, "expand_w", {c_exp, x.size(1)}, x);
  check_param(proj_w, "proj_w", {proj_b.size(0), c_exp}, x);
  const OptT ewp = expand_w ? OptT(pack_weight(*expand_w)) : OptT();
  return block(x, ewp, expand_b, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, se_w1, se_b1, se_w2, se_b2,
               pack_weight(proj_w), proj_b, residual, activation, se_activation, se_gate,
               choose_path(x, dw_w, stride, expand_w.has_value()));
}

}  // namespace

std::string mbconv_path(int64_t batch, int64_t c_in, int64_t height, int64_t width, int64_t c_exp, int64_t kernel,
                        int64_t stride, bool has_expand) {
  EFFK_CHECK_ARG(batch >= 0 && c_in >= 1 && height >= 1 && width >= 1 && c_exp >= 1 && kernel >= 1 &&
                     (stride == 1 || stride == 2),
                 "mbconv_path", "expected batch >= 0, positive sizes and stride 1 or 2, got batch ", batch, ", c_in ",
                 c_in, ", ", height, "x", width, ", c_exp ", c_exp, ", kernel ", kernel, ", stride ", stride);
  return path_name(choose_path(batch, c_in, height, width, c_exp, kernel, stride, has_expand));
}

TORCH_LIBRARY_IMPL(effkernels, CPU, m) {
  m.impl("mbconv", &mbconv_cpu);
  m.impl("mbconv_packed", &mbconv_packed);
  m.impl("pack_pointwise_weight", &pack_pointwise_weight);
  m.impl("pointwise_conv_packed", &pointwise_conv_packed);
}

// No tensor argument, so no dispatch key: the one kernel for every key.
TORCH_LIBRARY_IMPL(effkernels, CompositeExplicitAutograd, m) { m.impl("mbconv_path", &mbconv_path); }

}  // namespace effkernels::cpu
