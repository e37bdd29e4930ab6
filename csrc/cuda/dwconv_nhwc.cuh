// The NHWC depthwise kernel: k x k depthwise conv + bias + activation (+ SE partial sums), optionally
// applying act_in(x + in_bias) to its input first (the expand 1x1 conv's epilogue, so the expand GEMM
// writes its raw output and each of its elements is activated once, here). No torch headers: this file
// compiles on its own for reading SASS.
//
// A CTA owns (image n, a chunk of output rows, a strip of tc * kDwCols output columns, a slice of cvn
// 16-byte channel vectors) and walks down its rows. Input rows live in a shared-memory ring of K + S
// rows (all channels of the slice, the strip's input columns, zeros for the padding): while output row
// oh is computed, cp.async fills the S rows oh + 1 adds. Thread (cv, cg) computes kDwCols consecutive
// output columns x one channel vector: each input vector it loads from the ring (a 16-byte LDS) is
// converted once and feeds every (column, tap) that reads it; one kernel row of weights (fp32, from
// shared memory) sits in registers at a time. Threads = cvn * tc exactly: no lane is given a padded
// channel vector unless C is not a multiple of the slice count. Index math is int32 inside an image
// (the host checks H*W*C and OH*OW*C < 2^31).
// SE partial sums: every CTA writes the sums of its outputs, fp32, to partial[n][g][c] (g = chunk *
// strips + strip): each slot written once, no zero-fill, no atomics, deterministic.
#pragma once

#include "device.cuh"

namespace effkernels::cuda {

constexpr int kDwCols = 4;          // consecutive output columns per thread
constexpr int kDwMaxThreads = 256;  // cvn * tc <= this

struct DwNhwcParams {
  const void* x;        // [N, H, W, C] dense
  void* out;            // [N, OH, OW, C] dense
  const void* w;        // [C, 1, k, k]: element (c, kh, kw) at c * w_sc + kh * w_sh + kw * w_sw, dtype w_t
  const void* bias;     // [C], dtype b_t
  const void* in_bias;  // nullptr, or [C] (dtype ib_t): the input is act(x + in_bias, in_act)
  float* partial;       // nullptr, or fp32 [N, strips * chunks, C]
  int C, H, W, OH, OW, pad_t, pad_l;
  int w_sc, w_sh, w_sw;
  DType w_t, b_t, ib_t;
  int act, in_act;
  int cvn, tc;  // channel vectors x column groups per CTA (blockDim.x = cvn * tc)
  int slices, strips, chunks, rows_per_chunk;
  bool vec_in;   // C % kVec == 0 and x 16-byte aligned: input vectors by cp.async
  bool vec_out;  // C % kVec == 0 and out 16-byte aligned: 16-byte output stores
};

// Input columns of a strip of tc column groups.
template <int K, int S>
__host__ __device__ constexpr int dw_strip_cols(int tc) {
  return (tc * kDwCols - 1) * S + K;
}

// Dynamic shared memory of one CTA: fp32 weights [K*K][CS], bias [CS] and in_bias [CS], then the ring
// [K+S][strip cols][CS] in T (CS = cvn * kVec<T> channels).
template <typename T, int K, int S>
__host__ __device__ constexpr int dw_nhwc_smem_bytes(int cvn, int tc) {
  const int cs = cvn * kVec<T>;
  return (K * K + 2) * cs * 4 + (K + S) * dw_strip_cols<K, S>(tc) * cs * static_cast<int>(sizeof(T));
}

template <typename T, int K, int S>
__global__ void __launch_bounds__(kDwMaxThreads, 1) dw_nhwc_kernel(const DwNhwcParams p) {
  constexpr int V = kVec<T>, P = kDwCols, R = K + S;
  // Input rows an output row adds to the previous one's: S (K >= S), else K.
  constexpr int kNew = S < K ? S : K, kNewOff = K - kNew;
  constexpr bool kOneSfu = sizeof(T) == 2;  // SiLU/sigmoid with one MUFU op for 16-bit outputs
  extern __shared__ __align__(16) unsigned char smem[];
  const int CS = p.cvn * V, Wt = dw_strip_cols<K, S>(p.tc), row_elems = Wt * CS;
  float* wsm = reinterpret_cast<float*>(smem);
  float* bsm = wsm + K * K * CS;
  float* ibsm = bsm + CS;
  T* ring = reinterpret_cast<T*>(ibsm + CS);

  int u = blockIdx.x;
  const int slice = u % p.slices;
  u /= p.slices;
  const int strip = u % p.strips;
  u /= p.strips;
  const int chunk = u % p.chunks, n = u / p.chunks;
  const int oh0 = chunk * p.rows_per_chunk, oh1 = min(p.OH, oh0 + p.rows_per_chunk);
  const int ow0 = strip * p.tc * P;
  const int cv = threadIdx.x % p.cvn, cg = threadIdx.x / p.cvn;
  const int cs0 = slice * CS, c0 = cs0 + cv * V;
  const int nv = min(V, p.C - c0);  // channels of this thread's vector (<= 0: none)
  const int ih_base = oh0 * S - p.pad_t, iw_base = ow0 * S - p.pad_l;
  const T* __restrict__ xn = static_cast<const T*>(p.x) + static_cast<int64_t>(n) * p.H * p.W * p.C;
  T* __restrict__ on = static_cast<T*>(p.out) + static_cast<int64_t>(n) * p.OH * p.OW * p.C;

  // The slice's weights, fp32 tap-major, read through the weight's strides: a tap-major [k, k, C] weight
  // and a contiguous [C, 1, k, k] one both work (once per CTA); the biases beside them. (In shared memory,
  // not registers: 16 more registers per thread spilled the bf16 k5 kernel at ptxas's 128.)
  for (int i = threadIdx.x; i < K * K * CS; i += blockDim.x) {
    const int tap = i / CS, c = cs0 + i - tap * CS;
    wsm[i] = c < p.C ? load_as_f32(p.w, c * p.w_sc + (tap / K) * p.w_sh + (tap % K) * p.w_sw, p.w_t) : 0.f;
  }
  for (int i = threadIdx.x; i < CS; i += blockDim.x) {
    const bool ok = cs0 + i < p.C;
    bsm[i] = ok ? load_as_f32(p.bias, cs0 + i, p.b_t) : 0.f;
    ibsm[i] = ok && p.in_bias ? load_as_f32(p.in_bias, cs0 + i, p.ib_t) : 0.f;
  }

  // Input rows [ih0, ih0 + cnt) into their ring slots: in-image vectors by cp.async (or, when C is not a
  // multiple of the vector width, element by element), everything else zero. Pointers step by tc
  // columns; src is formed for out-of-image columns too but only read inside.
  auto stage = [&](int ih0, int cnt) {
    for (int r = 0; r < cnt; ++r) {
      const int ih = ih0 + r;
      const bool row_ok = static_cast<unsigned>(ih) < static_cast<unsigned>(p.H) && nv > 0;
      T* dst = ring + ((ih - ih_base) % R) * row_elems + cg * CS + cv * V;
      const T* src = xn + (ih * p.W + iw_base + cg) * p.C + c0;
      const int dstep = p.tc * CS, sstep = p.tc * p.C;
      if (row_ok && p.vec_in) {
        for (int iw = iw_base + cg; iw < iw_base + Wt; iw += p.tc, dst += dstep, src += sstep) {
          if (static_cast<unsigned>(iw) < static_cast<unsigned>(p.W)) cp_async16(dst, src);
          else *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
        }
      } else {
        for (int iw = iw_base + cg; iw < iw_base + Wt; iw += p.tc, dst += dstep, src += sstep) {
          float v[V];
          const bool ok = row_ok && static_cast<unsigned>(iw) < static_cast<unsigned>(p.W);
#pragma unroll
          for (int i = 0; i < V; ++i) v[i] = ok && i < nv ? to_f32(src[i]) : 0.f;
          *reinterpret_cast<uint4*>(dst) = pack<T>(v);
        }
      }
    }
  };
  // x -> act(x + in_bias) on the in-image part of rows [ih0, ih0 + cnt) (padding stays zero).
  auto transform = [&](int ih0, int cnt) {
    for (int r = 0; r < cnt; ++r) {
      const int ih = ih0 + r;
      if (static_cast<unsigned>(ih) >= static_cast<unsigned>(p.H) || nv <= 0) continue;
      T* qp = ring + ((ih - ih_base) % R) * row_elems + cg * CS + cv * V;
      for (int col = cg; col < Wt; col += p.tc, qp += p.tc * CS) {
        if (static_cast<unsigned>(iw_base + col) >= static_cast<unsigned>(p.W)) continue;
        uint4* q = reinterpret_cast<uint4*>(qp);
        float v[V];
        unpack<T>(*q, v);
#pragma unroll
        for (int i = 0; i < V; ++i) v[i] += ibsm[cv * V + i];
        act_array<kOneSfu>(v, p.in_act);
        *q = pack<T>(v);
      }
    }
  };

  float sum[V];
#pragma unroll
  for (int v = 0; v < V; ++v) sum[v] = 0.f;
  stage(ih_base, K);
  cp_async_commit();
  int slot0 = 0;  // ring slot of output row oh's first input row
  for (int oh = oh0; oh < oh1; ++oh) {
    const int it = oh - oh0;
    // The rows of oh + 1 go into the slots of rows only oh - 1 read (free since the barrier ending oh - 1).
    if (oh + 1 < oh1) stage(ih_base + (it + 1) * S + kNewOff, kNew);
    cp_async_commit();
    cp_async_wait<1>();  // this thread's copies of oh's rows have landed
    __syncthreads();     // ... and everyone's
    if (p.in_bias) {
      if (it == 0) transform(ih_base, K);
      else transform(ih_base + it * S + kNewOff, kNew);
      __syncthreads();
    }
    if (nv > 0) {
      float acc[P * V];
#pragma unroll
      for (int v = 0; v < V; v += 4) {
        const float4 b4 = *reinterpret_cast<const float4*>(bsm + cv * V + v);
#pragma unroll
        for (int i = 0; i < P; ++i)
          acc[i * V + v] = b4.x, acc[i * V + v + 1] = b4.y, acc[i * V + v + 2] = b4.z, acc[i * V + v + 3] = b4.w;
      }
      const T* tile = ring + cv * V + cg * P * S * CS;
#pragma unroll
      for (int kh = 0; kh < K; ++kh) {
        const int slot = slot0 + kh < R ? slot0 + kh : slot0 + kh - R;
        const T* rp = tile + slot * row_elems;
        float wr[K][V];
#pragma unroll
        for (int kw = 0; kw < K; ++kw)
#pragma unroll
          for (int v = 0; v < V; v += 4) {
            const float4 w4 = *reinterpret_cast<const float4*>(wsm + (kh * K + kw) * CS + cv * V + v);
            wr[kw][v] = w4.x, wr[kw][v + 1] = w4.y, wr[kw][v + 2] = w4.z, wr[kw][v + 3] = w4.w;
          }
#pragma unroll
        for (int j = 0; j < (P - 1) * S + K; ++j) {
          float xv[V];
          unpack<T>(*reinterpret_cast<const uint4*>(rp + j * CS), xv);
#pragma unroll
          for (int kw = 0; kw < K; ++kw) {
            const int d = j - kw;
            if (d >= 0 && d % S == 0 && d / S < P)
#pragma unroll
              for (int v = 0; v < V; ++v) acc[d / S * V + v] = fmaf(xv[v], wr[kw][v], acc[d / S * V + v]);
          }
        }
      }
      act_array<kOneSfu>(acc, p.act);
#pragma unroll
      for (int i = 0; i < P; ++i) {
        const int ow = ow0 + cg * P + i;
        if (ow >= p.OW) break;
        T* o = on + (oh * p.OW + ow) * p.C + c0;
        if (p.vec_out) {
          store_vec(o, reinterpret_cast<const float(&)[V]>(acc[i * V]));
        } else {
#pragma unroll
          for (int v = 0; v < V; ++v)
            if (v < nv) o[v] = from_f32<T>(acc[i * V + v]);
        }
#pragma unroll
        for (int v = 0; v < V; ++v) sum[v] += acc[i * V + v];
      }
    }
    __syncthreads();  // oh's rows are read: the next iteration may overwrite the ones oh + 1 drops
    slot0 = slot0 + S < R ? slot0 + S : slot0 + S - R;
  }

  if (p.partial == nullptr) return;
  // [tc][CS] partials in the (now idle) ring, then one thread per channel adds its tc column groups.
  float* red = reinterpret_cast<float*>(ring);
#pragma unroll
  for (int v = 0; v < V; ++v) red[cg * CS + cv * V + v] = sum[v];
  __syncthreads();
  float* dst = p.partial + (static_cast<int64_t>(n) * p.chunks * p.strips + chunk * p.strips + strip) * p.C;
  for (int cl = threadIdx.x; cl < CS && cs0 + cl < p.C; cl += blockDim.x) {
    float s = 0.f;
    for (int y = 0; y < p.tc; ++y) s += red[y * CS + cl];
    dst[cs0 + cl] = s;
  }
}

}  // namespace effkernels::cuda
