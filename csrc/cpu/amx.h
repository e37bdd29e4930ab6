// The bf16 1x1-conv GEMM on AMX tiles (Intel Sapphire Rapids and later), for the block kernels of gemm.h.
// A bf16 weight is packed for it once (pack_panels_amx: per panel of kAmxNR = 32 output channels, pairs of k
// interleaved, the layout TDPBF16PS reads) when this build and CPU can use AMX (amx_bf16_usable); every
// other weight gets gemm.h's fp32 panels. A call copies its rows of A into a bf16 buffer zero-padded to a
// multiple of 32 in K (the SE scale, when there is one, is applied in that copy, rounded to bf16 as eager
// rounds x * scale), then per group of 32 rows runs 2 x 2 tiles of 16 x 16 fp32 accumulators (bias-initialized)
// over K in steps of 32, and hands the 32 x 32 fp32 result to the caller's epilogue.
// Measured on B0's bf16 batch-8 GEMM shapes (1 thread, this kind of Xeon): the fp32-FMA panel GEMM took
// 3.9-7.4x torch.mm's time (oneDNN on AMX); benchmarks/results/2026-12-02-cpu-xeon-bf16.
#pragma once

#include <c10/util/BFloat16.h>

#include <cstdint>
#include <vector>

#include "vec.h"

// AMX code is compiled into AVX-512 builds by gcc >= 11 or clang (target attributes, so the rest of the
// build needs no AMX flags); whether it runs is decided at run time.
#if defined(CPU_CAPABILITY_AVX512) && defined(__x86_64__) && defined(__linux__) && \
    (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 11))
#define EFFK_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define EFFK_AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))
#else
#define EFFK_AMX 0
#endif

namespace effkernels::cpu {

using bf16 = c10::BFloat16;

// Output channels per AMX panel: two 16-column tiles (gemm.h's kNR in the AVX-512 builds that have AMX).
constexpr int kAmxNR = 32;

// K padded for the tiles: 32 bf16 (64 bytes) per tile row.
inline int64_t amx_k(int64_t K) { return (K + 31) / 32 * 32; }

// True when this build has the AMX kernel, the CPU has AMX-BF16 and Linux grants this process the tile state
// (asked once: arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA).
inline bool amx_bf16_usable() {
#if EFFK_AMX
  static const bool ok = [] {
    // CPUID leaf 7: AVX512F is EBX bit 16, AMX-BF16 EDX bit 22, AMX-TILE EDX bit 24 (cpuid rather than
    // __builtin_cpu_supports, whose AMX names older compilers lack).
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 16)) || !(d & (1u << 22)) || !(d & (1u << 24)))
      return false;
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
#else
  return false;
#endif
}

// W [C_out, K] bf16 -> [ceil(C_out / kAmxNR), amx_k(K) / 2, kAmxNR, 2] bf16: element (p, kk, j, t) =
// W[p * kAmxNR + j, 2 kk + t], zero past C_out and K. A panel's 16-column half at rows of k-pairs
// [16 i, 16 i + 16) is one B tile (64-byte rows, stride 2 * kAmxNR bf16).
inline at::Tensor pack_panels_amx(const at::Tensor& w) {
  const int64_t c_out = w.size(0), K = w.size(1), Kp = amx_k(K), nr = kAmxNR, panels = (c_out + nr - 1) / nr;
  at::Tensor padded = at::zeros({panels * nr, Kp}, w.options().dtype(at::kBFloat16));
  padded.narrow(0, 0, c_out).narrow(1, 0, K).copy_(w);
  return padded.view({panels, nr, Kp / 2, 2}).permute({0, 2, 1, 3}).contiguous();
}

// Rows [0, rows) of A (K values each, dense: NHWC pixels), times scale[k] when scale is given, as bf16 rows of
// amx_k(K) values (zero past K) in buf; rows up to the next multiple of 32 exist (their products are not used).
inline const bf16* rows_as_amx(const bf16* a, int64_t rows, int64_t K, const float* scale, std::vector<bf16>& buf) {
  const int64_t Kp = amx_k(K), need = (rows + 31) / 32 * 32 * Kp;
  if (static_cast<int64_t>(buf.size()) < need) buf.resize(need);
  for (int64_t i = 0; i < rows; ++i) {
    const bf16* src = a + i * K;
    bf16* dst = buf.data() + i * Kp;
    if (scale) {
      int64_t k = 0;
      for (; k + kVec <= K; k += kVec) store_f(dst + k, load_f(src + k) * Vec::loadu(scale + k));
      if (k < K) {
        const int n = static_cast<int>(K - k);
        store_f(dst + k, load_f(src + k, n) * Vec::loadu(scale + k, n), n);
      }
    } else {
      std::memcpy(dst, src, K * sizeof(bf16));
    }
    std::memset(static_cast<void*>(dst + K), 0, (Kp - K) * sizeof(bf16));
  }
  return buf.data();
}

#if EFFK_AMX
struct alignas(64) AmxConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// For rows [0, M) of a (rows_as_amx: row stride Kp) against one packed panel bp (Kp / 2 x kAmxNR x 2) with fp32
// bias (kAmxNR values): per group of up to 32 rows, t = the group's rows x kAmxNR fp32 (row stride kAmxNR, bias added),
// then done(m0, rows_in_group, t). Tiles: 0-3 accumulators (rows 0-15 / 16-31 x columns 0-15 / 16-31), 4-5 A,
// 6-7 B; the configuration is loaded per call (other code on this thread, oneDNN's, may load its own).
template <typename Done>
EFFK_AMX_TARGET inline void amx_rows_x_panel(const bf16* a, int64_t M, int64_t Kp, const bf16* bp, const float* bias,
                                             const Done& done) {
  AmxConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  _tile_loadconfig(&cfg);
  alignas(64) float t[32 * kAmxNR];
  const int64_t a_stride = Kp * int64_t{sizeof(bf16)}, b_stride = 2 * kAmxNR * int64_t{sizeof(bf16)};
  for (int64_t m0 = 0; m0 < M; m0 += 32) {
    const bf16* a0 = a + m0 * Kp;
    // A stride of 0 repeats the bias row down each accumulator.
    _tile_loadd(0, bias, 0);
    _tile_loadd(1, bias + 16, 0);
    const bool two = M - m0 > 16;
    if (two) {
      _tile_loadd(2, bias, 0);
      _tile_loadd(3, bias + 16, 0);
    }
    for (int64_t k = 0; k < Kp; k += 32) {
      const bf16* b = bp + k * kAmxNR;  // k-pair row k / 2, kAmxNR x 2 values each
      _tile_loadd(6, b, b_stride);
      _tile_loadd(7, b + 32, b_stride);
      _tile_loadd(4, a0 + k, a_stride);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      if (two) {
        _tile_loadd(5, a0 + 16 * Kp + k, a_stride);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    _tile_stored(0, t, kAmxNR * sizeof(float));
    _tile_stored(1, t + 16, kAmxNR * sizeof(float));
    if (two) {
      _tile_stored(2, t + 16 * kAmxNR, kAmxNR * sizeof(float));
      _tile_stored(3, t + 16 * kAmxNR + 16, kAmxNR * sizeof(float));
    }
    done(m0, std::min<int64_t>(32, M - m0), static_cast<const float*>(t));
  }
  _tile_release();
}
#endif

}  // namespace effkernels::cpu
