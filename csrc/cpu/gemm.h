// The CPU 1x1-conv GEMM of the MBConv block kernels: out[m, :] = epilogue(A[m, :] @ W^T + bias), with W
// packed once into panels of kNR output channels ([ceil(C_out / kNR), K, kNR] fp32, zero-padded), so a
// call does no weight reorder (oneDNN through at::mkldnn_convolution reorders its weights on every call:
// 33 reorders per B0 forward). A register tile is kMR rows x kNR columns (2 vectors); for each k it
// broadcasts kMR scalars of A and loads 2 vectors of the panel, which stays in L1/L2 while the rows of A
// stream past it. Accumulation is fp32 for every input dtype. A bf16 weight on a CPU with AMX is packed for
// the AMX tiles instead (amx.h), and the kernels run those panels there.
#pragma once

#include <type_traits>
#include <vector>

#include "amx.h"
#include "vec.h"

namespace effkernels::cpu {

constexpr int kNR = 2 * kVec;
// Accumulators kMR x 2 vectors + 2 panel vectors + 1 broadcast within the register file (16 ymm / 32 zmm).
constexpr int kMR = kVec == 16 ? 12 : 6;

inline int64_t panels_of(int64_t c_out) { return (c_out + kNR - 1) / kNR; }

// W [C_out, K] (any float dtype) -> packed fp32 [panels_of(C_out), K, kNR].
inline at::Tensor pack_panels(const at::Tensor& w) {
  const int64_t c_out = w.size(0), K = w.size(1), P = panels_of(c_out);
  at::Tensor padded = at::zeros({P * kNR, K}, w.options().dtype(at::kFloat));
  padded.narrow(0, 0, c_out).copy_(w);
  return padded.view({P, kNR, K}).transpose(1, 2).contiguous();
}

// A packed 1x1 weight as the kernels read it: fp32 panels [P, K, kNR] (pack_panels), or bf16 AMX panels
// [P, amx_k(K) / 2, kNR, 2] (pack_panels_amx) for bf16 inputs.
static_assert(!EFFK_AMX || kNR == kAmxNR, "AMX panels are the width of the fp32 ones");
struct Panels {
  const float* f32 = nullptr;
  const bf16* amx = nullptr;
  int64_t K = 0;
  const float* f32_panel(int64_t p) const { return f32 + p * K * kNR; }
  const bf16* amx_panel(int64_t p) const { return amx + p * amx_k(K) * kNR; }
};

// The packing pack_pointwise_weight makes: AMX panels for a bf16 weight where AMX runs, else fp32 panels.
inline at::Tensor pack_weight(const at::Tensor& w) {
  if (w.scalar_type() == at::kBFloat16 && amx_bf16_usable()) return pack_panels_amx(w);
  return pack_panels(w);
}

// acc[i][j] += sum_k a[i * lda + k] * bp[k * kNR + j * kVec + lane], for MR rows.
template <int MR>
EFFK_INLINE void tile(const float* __restrict a, int64_t lda, int64_t K, const float* __restrict bp,
                      Vec (&acc)[MR][2]) {
  for (int64_t k = 0; k < K; ++k, bp += kNR) {
    const Vec b0 = Vec::loadu(bp), b1 = Vec::loadu(bp + kVec);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const Vec av(a[i * lda + k]);
      acc[i][0] = at::vec::fmadd(av, b0, acc[i][0]);
      acc[i][1] = at::vec::fmadd(av, b1, acc[i][1]);
    }
  }
}

// n consecutive values of A as fp32: `a` itself when T is float, else converted into buf, once per block of
// rows, so one tile serves every dtype and broadcasts A from memory as an FMA operand (a 16-bit A needs a load,
// shift and move per broadcast; B0 bf16 batch 8 took the same time either way, 51.7 vs 52.1 ms).
template <typename T>
const float* rows_as_f32(const T* a, int64_t n, std::vector<float>& buf) {
  if constexpr (std::is_same_v<T, float>) {
    return a;
  } else {
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
    to_f32(a, n, buf.data());
    return buf.data();
  }
}

// Calls f(std::integral_constant<int, mr>) for a runtime mr in [MR, kMR].
template <int MR = 1, typename F>
EFFK_INLINE void with_mr(int mr, const F& f) {
  if constexpr (MR <= kMR) {
    if (mr == MR) return f(std::integral_constant<int, MR>{});
    with_mr<MR + 1>(mr, f);
  }
}

// Rows [0, M) of A (row stride lda) against panel p of `bp` (K x kNR, the panel's own base), bias
// `bias` (kNR fp32 values for this panel): store(i, j, v) receives the accumulated tile with the bias
// added, row i of the M, vector j (0/1) of the panel.
template <typename Store>
EFFK_INLINE void rows_x_panel(const float* a, int64_t lda, int64_t M, int64_t K, const float* bp, const float* bias,
                         const Store& store) {
  const Vec bias0 = Vec::loadu(bias), bias1 = Vec::loadu(bias + kVec);
  for (int64_t m = 0, mr; m < M; m += mr) {
    // A tile of 1-3 rows is 2-6 chains of dependent FMAs, latency-bound (8 keep both FMA pipes busy): the
    // last kMR + 1..3 rows go as two tiles of about half (7 rows as 4 + 3, not 6 + 1).
    mr = std::min<int64_t>(kMR, M - m);
    if (M - m > kMR && M - m < kMR + 4) mr = (M - m + 1) / 2;
    with_mr(static_cast<int>(mr), [&](auto mrc) EFFK_LAMBDA_INLINE {
      constexpr int MR = decltype(mrc)::value;
      Vec acc[MR][2];
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) acc[i][0] = bias0, acc[i][1] = bias1;
      tile<MR>(a + m * lda, lda, K, bp, acc);
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) store(m + i, 0, acc[i][0]), store(m + i, 1, acc[i][1]);
    });
  }
}

// kNR fp32 bias values of panel p (zeros past c_out).
template <typename T>
inline void panel_bias(const T* bias, int64_t c_out, int64_t p, float* dst) {
  for (int j = 0; j < kNR; ++j) dst[j] = p * kNR + j < c_out ? static_cast<float>(bias[p * kNR + j]) : 0.f;
}

}  // namespace effkernels::cpu
