"""1x1 convolution as a GEMM over channels, with the SE scale as prologue and bias, activation and
residual as epilogue.

Rows of the GEMM are pixels m = (n, h, w), columns are output channels:
out[m, co] = act(sum_ci (x[m, ci] * scale[n, ci]) * W[co, ci] + b[co]) + res[m, co].
Every tensor is addressed through its strides, so channels_last, NCHW and non-contiguous views all
run through the same kernel, in one of two row mappings:
- rows over the flattened (n, h, w) (channels_last and views): tiles may span several images, so
  small maps (7x7) fill whole tiles; ci is the contiguous dimension of the A tile.
- IMAGE_TILES (pixels contiguous, e.g. NCHW): a tile's rows are pixels of one image, addressed as
  p * stride_w, so the compiler sees unit-stride runs along rows and coalesces those loads.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

import math

from .._common import ACTIVATIONS, empty_like_layout
from ..backends import triton_interpreted
from ._common import TRITON_DTYPES, KernelConfigs, activation, launch_options, torch_dtype


def _tile(m, n, k, warps):
    return triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=warps, num_stages=3)


# EfficientNet's 1x1 convs: M = N*H*W is large, C_in/C_out are 16..3840 (the expand convs' C_in
# of 16/24 favour BLOCK_K = 16). Every one is compiled ahead of time (aot_variants).
GPU_CONFIGS = [
    _tile(128, 64, 32, 8),
    _tile(64, 64, 32, 4),
    _tile(64, 64, 16, 4),
    _tile(128, 128, 32, 8),
    _tile(64, 32, 64, 4),
]


def _fits(cfg, dtype: str) -> bool:
    """fp32 dots run as tf32x3 (operands split in two, three MMAs): tiles with more than 24 operand
    elements per thread per K step, or 128x128 accumulators, spill registers on sm_80/sm_90."""
    if dtype != "fp32":
        return True
    bm, bn, bk = cfg.kwargs["BLOCK_M"], cfg.kwargs["BLOCK_N"], cfg.kwargs["BLOCK_K"]
    return bm * bn <= 128 * 64 and (bm + bn) * bk <= 24 * 32 * cfg.num_warps


def _candidates(key):
    """The configs that fit the key (all of them for key None)."""
    if key is None:
        return GPU_CONFIGS
    dtype, m, hw, c_in, c_out, image_tiles, has_scale, has_res = key
    keep = [c for c in GPU_CONFIGS if _fits(c, dtype)]
    if image_tiles and hw % 16:
        # Rows whose mask the compiler cannot split into 16-aligned runs: 128x128 tiles spill there.
        keep = [c for c in keep if c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= 128 * 64]
    return keep


def _heuristic(key):
    dtype, m, hw, c_in, c_out, image_tiles, has_scale, has_res = key
    fitting = _candidates(key)
    if c_in <= 32:  # the expand convs of the first stages: K is one or two BLOCK_K = 16 steps
        return GPU_CONFIGS[2]
    if m >= 4096 and c_out >= 64 and GPU_CONFIGS[0] in fitting:
        return GPU_CONFIGS[0]
    return GPU_CONFIGS[1]


TABLE = KernelConfigs("pointwise_conv", ("dtype", "M", "HW", "C_IN", "C_OUT", "IMAGE_TILES", "HAS_SCALE", "HAS_RES"),
                      ("dtype", "IMAGE_TILES", "HAS_SCALE", "HAS_RES"), _candidates, _heuristic,
                      interpreter=triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4,
                                                num_stages=1))


@triton.jit
def _pointwise_conv_kernel(
    x_ptr, w_ptr, b_ptr, scale_ptr, res_ptr, out_ptr,
    M, HW, W, C_IN, C_OUT,
    sx_n, sx_c, sx_h, sx_w,
    sw_o, sw_i, sb,
    ss_n, ss_c,
    sr_n, sr_c, sr_h, sr_w,
    so_n, so_c, so_h, so_w,
    ACT: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_RES: tl.constexpr, IMAGE_TILES: tl.constexpr,
    DOT_FP32: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # Output-channel blocks vary fastest so programs that share an A (pixel) tile run together.
    pid = tl.program_id(0)
    num_n = tl.cdiv(C_OUT, BLOCK_N)
    pid_m = pid // num_n
    pid_n = pid % num_n

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    n_mask = offs_n < C_OUT
    if IMAGE_TILES:
        tiles = tl.cdiv(HW, BLOCK_M)
        img = (pid_m // tiles).to(tl.int64)
        offs_m = (pid_m % tiles) * BLOCK_M + tl.arange(0, BLOCK_M)
        m_mask = offs_m < HW
        x_row = img * sx_n + offs_m * sx_w
        r_row = img * sr_n + offs_m * sr_w
        o_row = img * so_n + offs_m * so_w
    else:
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        m_mask = offs_m < M
        # A tile's rows may span several images (small H*W): every row carries its own image index.
        img = (offs_m // HW).to(tl.int64)
        hw = offs_m % HW
        row_h = hw // W
        row_w = hw % W
        x_row = img * sx_n + row_h * sx_h + row_w * sx_w
        r_row = img * sr_n + row_h * sr_h + row_w * sr_w
        o_row = img * so_n + row_h * so_h + row_w * so_w

    # Pointers advance by BLOCK_K channels per step instead of being recomputed from indices.
    a_ptrs = x_ptr + x_row[:, None] + offs_k[None, :] * sx_c
    b_ptrs = w_ptr + offs_n[None, :] * sw_o + offs_k[:, None] * sw_i
    if HAS_SCALE:
        if IMAGE_TILES:  # one image per tile: a row vector of scales
            s_ptrs = scale_ptr + img * ss_n + offs_k * ss_c
        else:
            s_ptrs = scale_ptr + img[:, None] * ss_n + offs_k[None, :] * ss_c
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, C_IN, BLOCK_K):
        k_mask = (k0 + offs_k) < C_IN
        a_mask = m_mask[:, None] & k_mask[None, :]
        a = tl.load(a_ptrs, mask=a_mask, other=0.0)
        if HAS_SCALE:
            if IMAGE_TILES:
                s = tl.load(s_ptrs, mask=k_mask, other=0.0)[None, :]
            else:
                s = tl.load(s_ptrs, mask=a_mask, other=0.0)
            # Round the scaled input to x's dtype, as x * scale would be before an eager conv.
            a = (a.to(tl.float32) * s).to(x_ptr.dtype.element_ty)
            s_ptrs += BLOCK_K * ss_c
        b = tl.load(b_ptrs, mask=k_mask[:, None] & n_mask[None, :], other=0.0)
        if DOT_FP32:  # the interpreter multiplies bf16 bit patterns in tl.dot (triton#11584)
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        # tf32x3 keeps fp32 inputs at ~fp32 accuracy; fp16/bf16 operands ignore it.
        acc = tl.dot(a, b, acc, input_precision="tf32x3")
        a_ptrs += BLOCK_K * sx_c
        b_ptrs += BLOCK_K * sw_i

    acc += tl.load(b_ptr + offs_n * sb, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    acc = activation(acc, ACT, out_ptr.dtype.element_ty != tl.float32)  # (one-MUFU SiLU for fp16/bf16 outputs)
    mn_mask = m_mask[:, None] & n_mask[None, :]
    if HAS_RES:
        acc += tl.load(res_ptr + r_row[:, None] + offs_n[None, :] * sr_c, mask=mn_mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + o_row[:, None] + offs_n[None, :] * so_c, acc.to(out_ptr.dtype.element_ty), mask=mn_mask)


def pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, act_code: int,
                   scale: torch.Tensor | None, residual: torch.Tensor | None, config=None) -> torch.Tensor:
    """Launcher, arguments as the effkernels::pointwise_conv schema (already checked by ops/).
    `config`: a triton.Config to run instead of the picked one (tests and the tuner)."""
    n, c_in, h, w = x.shape
    c_out = weight.shape[0]
    out = empty_like_layout(x, (n, c_out, h, w))
    m = n * h * w
    if out.numel() == 0:
        return out
    has_scale, has_res = scale is not None, residual is not None
    # Unused pointer/stride arguments get x / zeros: the constexpr flags compile their uses away.
    s = scale if has_scale else x
    ss = scale.stride() if has_scale else (0, 0)
    r = residual if has_res else x
    rs = residual.stride() if has_res else (0, 0, 0, 0)
    # Pixels contiguous and every tensor's (h, w) flattening to one stride: tile per image.
    image_tiles = x.stride(3) == 1 and all(t.stride(2) == w * t.stride(3) for t in (x, r, out))
    if config is None:
        config = TABLE.pick((TRITON_DTYPES[x.dtype], m, h * w, c_in, c_out, image_tiles, has_scale, has_res),
                            x.device)
    launch = launch_options(config)
    rows = n * triton.cdiv(h * w, launch["BLOCK_M"]) if image_tiles else triton.cdiv(m, launch["BLOCK_M"])
    _pointwise_conv_kernel[(rows * triton.cdiv(c_out, launch["BLOCK_N"]),)](
        x, weight, bias, s, r, out,
        m, h * w, w, c_in, c_out,
        *x.stride(), *weight.stride(), bias.stride(0), *ss, *rs, *out.stride(),
        ACT=act_code, HAS_SCALE=has_scale, HAS_RES=has_res, IMAGE_TILES=image_tiles,
        DOT_FP32=triton_interpreted() and x.dtype == torch.bfloat16, **launch,
    )
    return out


@TABLE.runner
def _runner(key, device):
    """For the tuner: random inputs of `key` (square maps; NCHW for IMAGE_TILES, else channels_last; SiLU on the
    expand GEMMs, none with the SE scale, as in an MBConv block); returns run(config)."""
    dtype, m, hw, c_in, c_out, image_tiles, has_scale, has_res = key
    side = math.isqrt(hw)
    h, w = (side, side) if side * side == hw else (1, hw)
    like = dict(device=device, dtype=torch_dtype(dtype))
    fmt = torch.contiguous_format if image_tiles else torch.channels_last
    x = torch.randn(m // hw, c_in, h, w, **like).contiguous(memory_format=fmt)
    weight, bias = torch.randn(c_out, c_in, **like) / c_in ** 0.5, torch.randn(c_out, **like)
    scale = torch.rand(m // hw, c_in, device=device) if has_scale else None
    res = torch.randn(m // hw, c_out, h, w, **like).contiguous(memory_format=fmt) if has_res else None
    act = ACTIVATIONS["none" if has_scale else "silu"]
    return lambda config: pointwise_conv(x, weight, bias, act, scale, res, config)


def aot_variants():
    """Every (kernel, signature, constexprs) the launcher can request, for effkernels.triton._aot.

    Arguments are typed as the JIT specializes them for contiguous tensors: unit strides become constants,
    and ":16" marks what is a multiple of 16 when the channel counts are. Per dtype and row mapping: every
    config that fits the dtype with the scale prologue, SiLU and the residual epilogue (the largest code);
    then, with the first fitting config, every other value of each constexpr: no scale, no residual, every
    activation, and channel counts that are not multiples of 16 (C_in = 40, 24: no divisibility hints).
    """
    from .._common import ACTIVATIONS, CONV_ACTIVATIONS

    fn = _pointwise_conv_kernel
    out = []
    for dt in TRITON_DTYPES.values():
        for image_tiles in (False, True):
            sig = {name: "i32:16" for name in fn.arg_names}
            sig.update(M="i32", HW="i32", W="i32", x_ptr=f"*{dt}:16", w_ptr=f"*{dt}:16", b_ptr=f"*{dt}:16",
                       scale_ptr="*fp32:16", res_ptr=f"*{dt}:16", out_ptr=f"*{dt}:16")
            if image_tiles:  # NCHW: pixels unit-stride, channel stride H*W (maps from 28x28 up: 16 | H*W)
                sig.update(HW="i32:16", sx_h="i32", sr_h="i32", so_h="i32")
                units = dict(sx_w=1, sr_w=1, so_w=1)
            else:  # channels_last
                units = dict(sx_c=1, sr_c=1, so_c=1)
            unaligned = dict(sig, **{a: "i32" for a in sig if sig[a] == "i32:16"})
            base = dict(units, sw_i=1, sb=1, ss_c=1, ACT=3, HAS_SCALE=True, HAS_RES=True, IMAGE_TILES=image_tiles,
                        DOT_FP32=False)
            fitting = [c for c in GPU_CONFIGS if _fits(c, dt)]
            others = ([dict(base, HAS_SCALE=False), dict(base, HAS_RES=False)]
                      + [dict(base, ACT=ACTIVATIONS[a]) for a in CONV_ACTIVATIONS if a != "silu"])
            cases = ([(sig, cfg, base) for cfg in fitting] + [(sig, fitting[0], c) for c in others]
                     + [(unaligned, fitting[0], base)])
            for signature, cfg, const in cases:
                const = dict(const, **cfg.kwargs)
                signature = dict(signature, **{name: "constexpr" for name in const})
                out.append((fn, signature, dict(const, num_warps=cfg.num_warps, num_stages=cfg.num_stages)))
    return out


def hot_loop(kernel, consts):
    """For tools/kernel_report: the K loop, (outputs one thread holds, None: C_in / BLOCK_K iterations)."""
    return consts["BLOCK_M"] * consts["BLOCK_N"] / (32 * consts["num_warps"]), None
