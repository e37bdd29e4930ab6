// Fused depthwise k x k conv + folded BN + activation (+ SE spatial sums) on CUDA.
// NHWC: the shared-memory ring kernel of dwconv_nhwc.cuh (k and stride compile-time through
// dw_static_switch). NCHW: a thread per output pixel of one (n, c) plane (a general path).
// Weights and biases are read in their own dtype and through their strides, inside the kernels: no
// per-call transpose, cast or zero-fill. SE sums: per-block partials [N, G, C], each written once,
// then summed over G by sum_partials (no atomics, deterministic).
#include <torch/library.h>

#include <numeric>

#include "../dwconv_bn_act.h"
#include "../static_switch.h"
#include "dwconv_nhwc.cuh"
#include "ops.h"
#include "utils.cuh"

namespace effkernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPixelsPerThread = 4;
constexpr int kMinRowsPerChunk = 8;       // output rows a CTA walks at least (each chunk re-reads K - S rows)
constexpr int kSmemBudget = 96 * 1024;    // per CTA: two CTAs per SM on sm_90 (228 KiB), one on sm_80
constexpr int kMaxVectorsPerSlice = 16;   // 64 fp32 / 128 fp16|bf16 channels per CTA
constexpr int kTargetThreads = 128;

struct Geom {
  int C, H, W, OH, OW, stride, pad_t, pad_l, k, act;
};

// One output pixel of a depthwise conv on one NCHW plane (H x W input, fp32 accumulation), before the
// activation: bias + the taps that fall inside the input; weight (c, kh, kw) at w[kh * w_sh + kw * w_sw].
template <typename T>
__device__ inline float dw_pixel(const T* plane, const void* w, DType wt, int64_t w_c, int w_sh, int w_sw, float bias,
                                 int oh, int ow, const Geom& g) {
  float acc = bias;
  for (int kh = 0; kh < g.k; ++kh) {
    const int ih = oh * g.stride - g.pad_t + kh;
    if (ih < 0 || ih >= g.H) continue;
    for (int kw = 0; kw < g.k; ++kw) {
      const int iw = ow * g.stride - g.pad_l + kw;
      if (iw >= 0 && iw < g.W)
        acc = fmaf(to_f32(plane[ih * g.W + iw]), load_as_f32(w, w_c + kh * w_sh + kw * w_sw, wt), acc);
    }
  }
  return acc;
}

// partial: fp32 [N, tiles, C] or nullptr.
template <typename T>
__global__ void __launch_bounds__(kThreads) dw_nchw_kernel(const T* __restrict__ x, T* __restrict__ out,
                                                           const void* __restrict__ w, DType wt, int w_sc, int w_sh,
                                                           int w_sw, const void* __restrict__ bias, DType bt,
                                                           float* __restrict__ partial, Geom g, int tiles,
                                                           int pix_per_tile) {
  const int64_t plane = blockIdx.x / tiles;
  const int tile = blockIdx.x % tiles, c = plane % g.C;
  const int P = g.OH * g.OW, p_end = min(P, (tile + 1) * pix_per_tile);
  const T* xp = x + plane * g.H * g.W;
  const float b = load_as_f32(bias, c, bt);
  float sum = 0.f;
  for (int p = tile * pix_per_tile + threadIdx.x; p < p_end; p += blockDim.x) {
    const int oh = p / g.OW, ow = p - oh * g.OW;
    const float acc = apply_act(dw_pixel(xp, w, wt, static_cast<int64_t>(c) * w_sc, w_sh, w_sw, b, oh, ow, g), g.act);
    out[plane * P + p] = from_f32<T>(acc);
    sum += acc;
  }
  if (partial == nullptr) return;
  write_block_sum<kThreads>(sum, partial + ((plane / g.C) * tiles + tile) * g.C + c);
}

struct DwConfig {
  int cvn, tc, slices, strips, chunks, rows_per_chunk, smem;
};

// CTA shape (see dwconv_nhwc.cuh): channel slices of at most kMaxVectorsPerSlice vectors, balanced;
// about kTargetThreads threads, a whole number of warps where the slice allows, within the shared-memory
// budget; column strips balanced over the row; then enough row chunks for ~4 CTAs per SM.
template <typename T, int K, int S>
DwConfig dw_config(int64_t N, int64_t C, int64_t OH, int64_t OW, const DeviceProps& dp) {
  DwConfig cfg{};
  const int vectors = static_cast<int>((C + kVec<T> - 1) / kVec<T>);
  cfg.slices = (vectors + kMaxVectorsPerSlice - 1) / kMaxVectorsPerSlice;
  cfg.cvn = (vectors + cfg.slices - 1) / cfg.slices;
  const int groups = static_cast<int>((OW + kDwCols - 1) / kDwCols);
  const int warp_multiple = 32 / std::gcd(cfg.cvn, 32);  // tc a multiple of this: cvn * tc fills warps
  int tc = std::max(1, kTargetThreads / cfg.cvn);
  if (tc >= warp_multiple) tc = tc / warp_multiple * warp_multiple;
  else if (cfg.cvn * warp_multiple <= kDwMaxThreads) tc = warp_multiple;
  tc = std::min(tc, groups);
  const int budget = std::min(kSmemBudget, dp.smem_optin);
  while (tc > 1 && dw_nhwc_smem_bytes<T, K, S>(cfg.cvn, tc) > budget) --tc;
  cfg.strips = (groups + tc - 1) / tc;
  cfg.tc = (groups + cfg.strips - 1) / cfg.strips;
  cfg.smem = dw_nhwc_smem_bytes<T, K, S>(cfg.cvn, cfg.tc);
  TORCH_CHECK(cfg.smem <= dp.smem_optin, "dwconv_bn_act: needs ", cfg.smem, " bytes of shared memory per block, the ",
              "device allows ", dp.smem_optin);
  const int64_t ctas = N * cfg.slices * cfg.strips;
  const int64_t max_chunks = std::max<int64_t>(1, OH / kMinRowsPerChunk);
  const int64_t chunks = std::clamp<int64_t>((4 * dp.sms + ctas - 1) / ctas, 1, max_chunks);
  cfg.rows_per_chunk = static_cast<int>((OH + chunks - 1) / chunks);
  cfg.chunks = static_cast<int>((OH + cfg.rows_per_chunk - 1) / cfg.rows_per_chunk);
  return cfg;
}

template <typename T, int K, int S>
at::Tensor launch_dw_nhwc(DwNhwcParams& p, int64_t N, bool want_partials, const at::TensorOptions& f32opts) {
  const int device = c10::cuda::current_device();
  const DwConfig cfg = dw_config<T, K, S>(N, p.C, p.OH, p.OW, device_props(device));
  p.cvn = cfg.cvn, p.tc = cfg.tc, p.slices = cfg.slices, p.strips = cfg.strips, p.chunks = cfg.chunks;
  p.rows_per_chunk = cfg.rows_per_chunk;
  at::Tensor partial;
  if (want_partials) {
    partial = at::empty({N, static_cast<int64_t>(cfg.strips) * cfg.chunks, p.C}, f32opts);
    p.partial = partial.mutable_data_ptr<float>();
  }
  const int64_t blocks = N * cfg.chunks * cfg.strips * cfg.slices;
  allow_dynamic_smem<dw_nhwc_kernel<T, K, S>>(device, cfg.smem);
  dw_nhwc_kernel<T, K, S><<<grid_x(blocks, "dwconv_bn_act"), cfg.cvn * cfg.tc, cfg.smem,
                            c10::cuda::getCurrentCUDAStream()>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return partial;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> dwconv_nhwc(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                               int64_t stride, int64_t pad_top, int64_t pad_left, int64_t out_h,
                                               int64_t out_w, int64_t activation,
                                               const std::optional<at::Tensor>& in_bias, int64_t in_activation,
                                               bool want_partials) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), k = weight.size(2);
  EFFK_CHECK_ARG(H * W * C < (int64_t{1} << 31) && out_h * out_w * C < (int64_t{1} << 31), "x",
                 "expected H*W*C and out_h*out_w*C below 2^31 (per image)");
  at::Tensor out = at::empty({N, C, out_h, out_w}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const auto f32opts = x.options().dtype(at::kFloat);
  if (out.numel() == 0) return {out, want_partials ? at::empty({N, 1, C}, f32opts) : at::Tensor()};
  DwNhwcParams p{};
  p.x = x.const_data_ptr(), p.out = out.mutable_data_ptr(), p.w = weight.const_data_ptr();
  p.bias = bias.const_data_ptr(), p.in_bias = in_bias ? in_bias->const_data_ptr() : nullptr;
  p.C = static_cast<int>(C), p.H = static_cast<int>(H), p.W = static_cast<int>(W);
  p.OH = static_cast<int>(out_h), p.OW = static_cast<int>(out_w);
  p.pad_t = static_cast<int>(pad_top), p.pad_l = static_cast<int>(pad_left);
  p.w_sc = static_cast<int>(weight.stride(0)), p.w_sh = static_cast<int>(weight.stride(2));
  p.w_sw = static_cast<int>(weight.stride(3));
  p.w_t = dtype_of(weight), p.b_t = dtype_of(bias), p.ib_t = in_bias ? dtype_of(*in_bias) : DType::F32;
  p.act = static_cast<int>(activation), p.in_act = static_cast<int>(in_activation);
  at::Tensor partial;
  EFFK_DISPATCH_FLOAT(x.scalar_type(), "dwconv_bn_act_cuda", [&] {
    using T = typename CudaType<scalar_t>::type;
    p.vec_in = C % kVec<T> == 0 && aligned16(p.x);
    p.vec_out = C % kVec<T> == 0 && aligned16(p.out);
    partial = dw_static_switch(k, stride, [&](auto kc, auto sc) {
      return launch_dw_nhwc<T, decltype(kc)::value, decltype(sc)::value>(p, N, want_partials, f32opts);
    });
  });
  return {out, partial};
}

namespace {

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
  const auto f32opts = x.options().dtype(at::kFloat);
  if (is_channels_last(x)) {
    auto [out, partial] = dwconv_nhwc(x, weight, bias, stride, pad_top, pad_left, out_h, out_w, activation,
                                      std::nullopt, 0, se_sums);
    return {out, se_sums ? sum_partials(partial) : at::empty({0}, f32opts)};
  }
  const int64_t N = x.size(0), C = x.size(1);
  at::Tensor out = empty_in_layout(x, {N, C, out_h, out_w});
  const int64_t P = out_h * out_w;
  const int pix_per_tile = kThreads * kPixelsPerThread;
  const int tiles = static_cast<int>((P + pix_per_tile - 1) / pix_per_tile);
  at::Tensor partial = se_sums ? at::empty({N, tiles, C}, f32opts) : at::Tensor();
  if (out.numel() > 0) {
    Geom g{static_cast<int>(C), static_cast<int>(x.size(2)), static_cast<int>(x.size(3)), static_cast<int>(out_h),
           static_cast<int>(out_w), static_cast<int>(stride), static_cast<int>(pad_top), static_cast<int>(pad_left),
           static_cast<int>(k), static_cast<int>(activation)};
    EFFK_DISPATCH_FLOAT(x.scalar_type(), "dwconv_bn_act_cuda", [&] {
      using T = typename CudaType<scalar_t>::type;
      dw_nchw_kernel<T><<<grid_x(N * C * tiles, "dwconv_bn_act"), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          static_cast<const T*>(x.const_data_ptr()), static_cast<T*>(out.mutable_data_ptr()), weight.const_data_ptr(),
          dtype_of(weight), static_cast<int>(weight.stride(0)), static_cast<int>(weight.stride(2)),
          static_cast<int>(weight.stride(3)), bias.const_data_ptr(), dtype_of(bias),
          se_sums ? partial.mutable_data_ptr<float>() : nullptr, g, tiles, pix_per_tile);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return {out, se_sums ? sum_partials(partial) : at::empty({0}, f32opts)};
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CUDA, m) { m.impl("dwconv_bn_act", &dwconv_bn_act_cuda); }

}  // namespace effkernels::cuda
