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

from .._common import empty_like_layout
from ..backends import triton_autotune, triton_interpreted


@triton.jit
def apply_activation(x, ACT: tl.constexpr):
    """Activation by its effkernels._common.ACTIVATIONS code, on fp32 values."""
    if ACT == 1:  # relu
        x = tl.maximum(x, 0.0)
    elif ACT == 2:  # relu6
        x = tl.minimum(tl.maximum(x, 0.0), 6.0)
    elif ACT == 3:  # silu
        x = x * tl.sigmoid(x)
    elif ACT == 4:  # hardswish
        x = x * tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) * (1.0 / 6.0)
    elif ACT == 5:  # sigmoid
        x = tl.sigmoid(x)
    elif ACT == 6:  # hardsigmoid
        x = tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) * (1.0 / 6.0)
    return x


# EfficientNet's 1x1 convs: M = N*H*W is large, C_in/C_out are 16..3840 (the expand convs' C_in
# of 16/24 favour BLOCK_K = 16). Every one is compiled ahead of time (aot_variants).
GPU_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 16}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 64}, num_warps=4, num_stages=3),
]


def _configs():
    """What the autotuner chooses from."""
    if triton_interpreted():  # one config: the interpreter would otherwise "benchmark" every one
        return [triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=1)]
    # EFFKERNELS_TRITON_AUTOTUNE=0: one config that _fits every dtype and layout.
    return GPU_CONFIGS if triton_autotune() else GPU_CONFIGS[2:3]


def _fits(cfg, dtype) -> bool:
    """fp32 dots run as tf32x3 (operands split in two, three MMAs): tiles with more than 24 operand
    elements per thread per K step, or 128x128 accumulators, spill registers on sm_80/sm_90."""
    if dtype != torch.float32:
        return True
    bm, bn, bk = cfg.kwargs["BLOCK_M"], cfg.kwargs["BLOCK_N"], cfg.kwargs["BLOCK_K"]
    return bm * bn <= 128 * 64 and (bm + bn) * bk <= 24 * 32 * cfg.num_warps


def _prune(configs, named_args, **kwargs):
    keep = [c for c in configs if _fits(c, named_args["x_ptr"].dtype)]
    if kwargs["IMAGE_TILES"] and named_args["HW"] % 16:
        # Rows whose mask the compiler cannot split into 16-aligned runs: 128x128 tiles spill there.
        keep = [c for c in keep if c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"] <= 128 * 64]
    return keep


@triton.autotune(configs=_configs(), key=["M", "C_OUT", "C_IN", "HAS_SCALE", "HAS_RES"],
                 prune_configs_by={"early_config_prune": _prune})
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
    acc = apply_activation(acc, ACT)
    mn_mask = m_mask[:, None] & n_mask[None, :]
    if HAS_RES:
        acc += tl.load(res_ptr + r_row[:, None] + offs_n[None, :] * sr_c, mask=mn_mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + o_row[:, None] + offs_n[None, :] * so_c, acc.to(out_ptr.dtype.element_ty), mask=mn_mask)


def pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, activation: int,
                   scale: torch.Tensor | None, residual: torch.Tensor | None) -> torch.Tensor:
    """Launcher, arguments as the effkernels::pointwise_conv schema (already checked by ops/)."""
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

    def grid(meta):
        rows = n * triton.cdiv(h * w, meta["BLOCK_M"]) if image_tiles else triton.cdiv(m, meta["BLOCK_M"])
        return (rows * triton.cdiv(c_out, meta["BLOCK_N"]),)

    _pointwise_conv_kernel[grid](
        x, weight, bias, s, r, out,
        m, h * w, w, c_in, c_out,
        *x.stride(), *weight.stride(), bias.stride(0), *ss, *rs, *out.stride(),
        ACT=activation, HAS_SCALE=has_scale, HAS_RES=has_res, IMAGE_TILES=image_tiles,
        DOT_FP32=triton_interpreted() and x.dtype == torch.bfloat16,
    )
    return out


_TRITON_DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def aot_variants():
    """(kernel, signature, constexprs) per autotune config x dtype x row mapping, for
    effkernels.triton._aot.

    Each variant enables the scale prologue, an activation and the residual epilogue, so it is the
    largest code the launcher can pick. Arguments are typed as the JIT specializes them for
    contiguous tensors: unit strides become constants, and ":16" marks what is a multiple of 16
    when the channel counts are (pointers, C, the strides that are multiples of C).
    """
    fn = _pointwise_conv_kernel.fn
    out = []
    for cfg in GPU_CONFIGS:
        for dtype, dt in _TRITON_DTYPES.items():
            if not _fits(cfg, dtype):
                continue
            for image_tiles in (False, True):
                sig = {name: "i32:16" for name in fn.arg_names}
                sig.update(M="i32", HW="i32", W="i32", x_ptr=f"*{dt}:16", w_ptr=f"*{dt}:16", b_ptr=f"*{dt}:16",
                           scale_ptr="*fp32:16", res_ptr=f"*{dt}:16", out_ptr=f"*{dt}:16")
                if image_tiles:  # NCHW: pixels unit-stride, channel stride H*W (maps from 28x28 up: 16 | H*W)
                    sig.update(HW="i32:16", sx_h="i32", sr_h="i32", so_h="i32")
                    units = dict(sx_w=1, sr_w=1, so_w=1)
                else:  # channels_last
                    units = dict(sx_c=1, sr_c=1, so_c=1)
                const = dict(units, sw_i=1, sb=1, ss_c=1, ACT=3, HAS_SCALE=True, HAS_RES=True,
                             IMAGE_TILES=image_tiles, DOT_FP32=False, **cfg.kwargs)
                sig.update({name: "constexpr" for name in const})
                const.update(num_warps=cfg.num_warps, num_stages=cfg.num_stages)
                out.append((fn, sig, const))
    return out
