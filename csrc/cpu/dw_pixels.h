// The depthwise column walk shared by the CPU depthwise kernel (dwconv_bn_act.cpp) and the fused MBConv
// block (mbconv_block.cpp): P output columns of one output row and one channel vector, fed from input
// rows laid out column by column, and the ring of input rows both feed it from.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "vec.h"

namespace effkernels::cpu {

// P (8, 4, 2 or 1) output columns of one output row and one channel vector: conv, bias, activation,
// store, and add to the SE partial sums. rows[kh] points at the group's first input column (nullptr: a
// row of zero padding); input columns are cs floats apart (kVec in a ring buffer, C in an fp32 input
// row). k and stride are compile-time, so the P*S+K-1 input columns of a kernel row are walked once with
// one advancing pointer, each loaded once and fed to every (i, kw) tap that reads it; weights and
// accumulators stay in registers.
template <typename T, int K, int S, int P>
EFFK_INLINE void pixels(const float* const* rows, int64_t cs, const float* wc, int64_t Cp, const float* bc, T* out_c,
                   int64_t C, float* part_c, int nc, int act) {
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
#pragma GCC unroll 7
  for (int kh = 0; kh < K; ++kh) {
    if (!rows[kh]) continue;
    Vec wv[K];
#pragma GCC unroll 7
    for (int kw = 0; kw < K; ++kw) wv[kw] = Vec::loadu(wc + (kh * K + kw) * Cp);
    const float* q = rows[kh];
#pragma GCC unroll 64
    for (int j = 0; j < P * S + K - 1; ++j) {
      const Vec v = Vec::loadu(q);
      q += cs;
#pragma GCC unroll 7
      for (int kw = 0; kw < K; ++kw) {
        const int d = j - kw;
        if (d >= 0 && d % S == 0 && d / S < P) acc[kh % R][d / S] = at::vec::fmadd(v, wv[kw], acc[kh % R][d / S]);
      }
    }
  }
  Vec sum(0.f);
#pragma GCC unroll 8
  for (int i = 0; i < P; ++i) {
#pragma GCC unroll 4
    for (int r = 1; r < R; ++r) acc[0][i] = acc[0][i] + acc[r][i];
    const Vec v = act_vec(acc[0][i], act);
    store_f(out_c + i * C, v, nc);
    sum = sum + v;
  }
  if (part_c) (Vec::loadu(part_c) + sum).store(part_c);
}

// 8 output columns at a time, then 4, 2, 1 (with R partial sums each, see pixels): group(P, ow) for
// ow in [ow0, ow1).
template <typename Group>
inline void column_groups(int64_t ow0, int64_t ow1, const Group& group) {
  int64_t ow = ow0;
  for (; ow + 8 <= ow1; ow += 8) group(std::integral_constant<int, 8>{}, ow);
  for (; ow + 4 <= ow1; ow += 4) group(std::integral_constant<int, 4>{}, ow);
  for (; ow + 2 <= ow1; ow += 2) group(std::integral_constant<int, 2>{}, ow);
  for (; ow < ow1; ++ow) group(std::integral_constant<int, 1>{}, ow);
}

// A task's ring of K fp32 row buffers of `slot` floats: input row ih lives in slot ih % K, filled once
// (by the caller's fill(buf, ih): a copy or an expand GEMM) while output rows advance; columns the fill
// does not write (padding) stay zero.
template <int K, int S>
struct RowRing {
  std::vector<float> buf;
  int64_t slot, held[K];

  explicit RowRing(int64_t slot_floats) : buf(static_cast<size_t>(K * slot_floats), 0.f), slot(slot_floats) { reset(); }
  void reset() { std::fill(held, held + K, int64_t{-1}); }

  // rows[kh]: the buffer of input row oh * S - pad_t + kh, nullptr for a row of padding outside [0, H).
  template <typename Fill>
  void rows_for(int64_t oh, int64_t pad_t, int64_t H, const float* (&rows)[K], const Fill& fill) {
    for (int kh = 0; kh < K; ++kh) {
      const int64_t ih = oh * S - pad_t + kh;
      rows[kh] = nullptr;
      if (ih < 0 || ih >= H) continue;
      float* b = buf.data() + (ih % K) * slot;
      if (held[ih % K] != ih) {
        held[ih % K] = ih;
        fill(b, ih);
      }
      rows[kh] = b;
    }
  }
};

}  // namespace effkernels::cpu
