// Fused depthwise k x k conv + folded BN + activation (+ SE spatial sums) on CUDA.
// NHWC: a thread owns one 16-byte channel vector (4 fp32 / 8 fp16|bf16 channels) and walks
// pixels of a tile; x, out and the fp32 weights packed [k*k, C] are read as 16-byte vectors.
// NCHW: a thread per output pixel of one (n, c) plane.
// fp32 accumulation. SE sums: per-thread partials, a shared-memory reduction per block, one
// atomicAdd per (block, channel). Offsets into x/out are 64-bit.
#include <torch/library.h>

#include "../dwconv_bn_act.h"
#include "../static_switch.h"
#include "utils.cuh"

namespace effkernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPixelsPerThread = 4;

struct Geom {
  int C, H, W, OH, OW, stride, pad_t, pad_l, k, act;
};

// K, S: kernel size and stride (dw_static_switch).
template <typename T, int K, int S>
__global__ void __launch_bounds__(kThreads) dw_nhwc_kernel(const T* __restrict__ x, T* __restrict__ out,
                                                           const float* __restrict__ w, const float* __restrict__ bias,
                                                           float* __restrict__ sums, Geom g, bool vec_ok, int tiles,
                                                           int pix_per_tile) {
  constexpr int V = kVec<T>;
  const int n = blockIdx.x / tiles, tile = blockIdx.x % tiles;
  const int c0 = (blockIdx.y * blockDim.x + threadIdx.x) * V;
  const int nv = min(V, g.C - c0);  // <= 0: thread idle (still joins the reduction)
  const int P = g.OH * g.OW;
  const int p_end = min(P, (tile + 1) * pix_per_tile);
  float sum[V];
  float b[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
    sum[v] = 0.f;
    b[v] = v < nv ? bias[c0 + v] : 0.f;
  }
  for (int p = tile * pix_per_tile + threadIdx.y; nv > 0 && p < p_end; p += blockDim.y) {
    const int oh = p / g.OW, ow = p - oh * g.OW;
    const int ih0 = oh * S - g.pad_t, iw0 = ow * S - g.pad_l;
    float acc[V];
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] = b[v];
#pragma unroll
    for (int kh = 0; kh < K; ++kh) {
      const int ih = ih0 + kh;
      if (ih < 0 || ih >= g.H) continue;
      const T* row = x + ((static_cast<int64_t>(n) * g.H + ih) * g.W) * g.C + c0;
#pragma unroll
      for (int kw = 0; kw < K; ++kw) {
        const int iw = iw0 + kw;
        if (iw < 0 || iw >= g.W) continue;
        const T* px = row + static_cast<int64_t>(iw) * g.C;
        const float* wp = w + (kh * K + kw) * g.C + c0;
        if (vec_ok) {
          float xv[V], wv[V];
          load_vec(px, xv);
#pragma unroll
          for (int i = 0; i < V / 4; ++i) *reinterpret_cast<float4*>(wv + 4 * i) = __ldg(reinterpret_cast<const float4*>(wp) + i);
#pragma unroll
          for (int v = 0; v < V; ++v) acc[v] = fmaf(xv[v], wv[v], acc[v]);
        } else {
#pragma unroll
          for (int v = 0; v < V; ++v)
            if (v < nv) acc[v] = fmaf(static_cast<float>(px[v]), __ldg(wp + v), acc[v]);
        }
      }
    }
#pragma unroll
    for (int v = 0; v < V; ++v) {
      acc[v] = apply_act(acc[v], g.act);
      sum[v] += acc[v];
    }
    T* po = out + (static_cast<int64_t>(n) * P + p) * g.C + c0;
    if (vec_ok) {
      store_vec(po, acc);
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v)
        if (v < nv) po[v] = static_cast<T>(acc[v]);
    }
  }
  if (sums == nullptr) return;
  add_channel_sums<V, kThreads>(sum, sums + static_cast<int64_t>(n) * g.C, c0, nv);
}

// One output pixel of a depthwise conv on one NCHW plane (H x W input, k x k weights wc, fp32
// accumulation), before the activation: bias + the taps that fall inside the input.
template <typename T>
__device__ inline float dw_pixel(const T* plane, const float* wc, float bias, int oh, int ow, int k, int stride,
                                 int pad_t, int pad_l, int H, int W) {
  float acc = bias;
  for (int kh = 0; kh < k; ++kh) {
    const int ih = oh * stride - pad_t + kh;
    if (ih < 0 || ih >= H) continue;
    for (int kw = 0; kw < k; ++kw) {
      const int iw = ow * stride - pad_l + kw;
      if (iw >= 0 && iw < W) acc = fmaf(static_cast<float>(plane[ih * W + iw]), __ldg(wc + kh * k + kw), acc);
    }
  }
  return acc;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) dw_nchw_kernel(const T* __restrict__ x, T* __restrict__ out,
                                                           const float* __restrict__ w, const float* __restrict__ bias,
                                                           float* __restrict__ sums, Geom g, int tiles,
                                                           int pix_per_tile) {
  const int64_t plane = blockIdx.x / tiles;
  const int tile = blockIdx.x % tiles, c = plane % g.C, k = g.k;
  const int P = g.OH * g.OW, p_end = min(P, (tile + 1) * pix_per_tile);
  const T* xp = x + plane * g.H * g.W;
  const float* wc = w + c * k * k;
  float sum = 0.f;
  for (int p = tile * pix_per_tile + threadIdx.x; p < p_end; p += blockDim.x) {
    const int oh = p / g.OW, ow = p - oh * g.OW;
    const float acc = apply_act(dw_pixel(xp, wc, bias[c], oh, ow, k, g.stride, g.pad_t, g.pad_l, g.H, g.W), g.act);
    out[plane * P + p] = static_cast<T>(acc);
    sum += acc;
  }
  if (sums == nullptr) return;
  add_block_sum<kThreads>(sum, sums + plane);
}

std::tuple<at::Tensor, at::Tensor> dwconv_bn_act_cuda(const at::Tensor& x_in, const at::Tensor& weight,
                                                      const at::Tensor& bias, int64_t stride, int64_t pad_top,
                                                      int64_t pad_left, int64_t out_h, int64_t out_w,
                                                      int64_t activation, bool se_sums) {
  const int64_t k = check_dwconv_args(x_in, weight, bias, stride, pad_top, pad_left, out_h, out_w, activation);
  EFFK_CHECK_ARG(x_in.is_cuda(), "x", "expected a CUDA tensor, got one on ", x_in.device());
  EFFK_CHECK_ARG(x_in.size(2) * x_in.size(3) < (int64_t{1} << 31) && out_h * out_w < (int64_t{1} << 31), "x",
                 "expected H*W and out_h*out_w below 2^31");
  c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = dense_in_layout(x_in);
  const int64_t N = x.size(0), C = x.size(1);
  at::Tensor out = empty_in_layout(x, {N, C, out_h, out_w});
  const auto f32opts = x.options().dtype(at::kFloat);
  at::Tensor sums = se_sums ? at::zeros({N, C}, f32opts) : at::empty({0}, f32opts);
  if (out.numel() == 0) return {out, sums};
  Geom g{static_cast<int>(C), static_cast<int>(x.size(2)), static_cast<int>(x.size(3)), static_cast<int>(out_h),
         static_cast<int>(out_w), static_cast<int>(stride), static_cast<int>(pad_top), static_cast<int>(pad_left),
         static_cast<int>(k), static_cast<int>(activation)};
  const int64_t P = out_h * out_w;
  const at::Tensor b = f32(bias);
  float* sums_ptr = se_sums ? sums.mutable_data_ptr<float>() : nullptr;
  auto stream = c10::cuda::getCurrentCUDAStream();

  EFFK_DISPATCH_FLOAT(x.scalar_type(), "dwconv_bn_act_cuda", [&] {
    if (is_channels_last(x)) {
      constexpr int V = kVec<scalar_t>;
      const at::Tensor wpk = f32(weight).reshape({C, k * k}).t().contiguous();  // [k*k, C]
      const bool vec_ok = C % V == 0 && aligned16(x.const_data_ptr()) && aligned16(out.const_data_ptr());
      const int64_t groups = (C + V - 1) / V;
      const unsigned tx = std::min<unsigned>(32, next_pow2(groups)), ty = kThreads / tx;
      const int pix_per_tile = ty * kPixelsPerThread;
      const int tiles = static_cast<int>((P + pix_per_tile - 1) / pix_per_tile);
      const dim3 grid(grid_x(N * tiles, "dwconv_bn_act"), static_cast<unsigned>((groups + tx - 1) / tx));
      dw_static_switch(k, stride, [&](auto kc, auto sc) {
        dw_nhwc_kernel<scalar_t, decltype(kc)::value, decltype(sc)::value><<<grid, dim3(tx, ty), 0, stream>>>(
            x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), wpk.const_data_ptr<float>(),
            b.const_data_ptr<float>(), sums_ptr, g, vec_ok, tiles, pix_per_tile);
      });
    } else {
      const at::Tensor w = f32(weight);
      const int pix_per_tile = kThreads * kPixelsPerThread;
      const int tiles = static_cast<int>((P + pix_per_tile - 1) / pix_per_tile);
      dw_nchw_kernel<scalar_t><<<grid_x(N * C * tiles, "dwconv_bn_act"), kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), w.const_data_ptr<float>(),
          b.const_data_ptr<float>(), sums_ptr, g, tiles, pix_per_tile);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, sums};
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("dwconv_bn_act", &dwconv_bn_act_cuda); }

}  // namespace effkernels::cuda
