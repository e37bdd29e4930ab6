"""Squeeze-excitation in three kernels: channel sums (squeeze), the excite MLP, and the scale.

Inside an MBConv block the squeeze comes from the depthwise kernel's epilogue and the scale is
the prologue of the project GEMM (triton/pointwise_conv.py), so only `se_excite` runs there.
The depthwise kernel leaves the sums in pieces, fp32 [N, P_blocks, C] (one row per pixel block,
triton/dwconv_bn_act.py); `se_excite` adds them up while it takes the mean, so the block needs
no zero-filled buffer, no atomics and no separate reduction. [N, C] sums are the P_blocks = 1 case.
`channel_sums` and `se_scale` serve SE blocks that do not follow a depthwise conv.
All tensors are addressed through their strides (channels_last, NCHW and views alike).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._common import empty_like_layout
from ._common import TRITON_DTYPES, activation

# Tile of the pixel x channel kernels: 4096 elements, 32 per thread at 4 warps.
_SUMS_BLOCK_HW, _SUMS_BLOCK_C = 64, 64
_SCALE_BLOCK_M, _SCALE_BLOCK_C = 64, 64
# se_excite holds the whole hidden vector (S values) in registers; its weight tiles have at most
# _EXCITE_TILE elements, so BLOCK_C shrinks as S grows (and to C's power of two when C is
# smaller). Partial sums are read in tiles of BLOCK_R rows x BLOCK_C channels: at most
# _PARTIALS_TILE elements and _PARTIALS_ROWS rows; BLOCK_R = 1 for [N, C] sums. One program per
# image walks all P rows, so the rows per load matter: with C = 32 (B0's first block, 196 rows
# of 64 pixels at 112 x 112) a [32, 32] tile takes 7 loads where an [8, 256] one took 25.
# (64 rows spilled on sm_90 at S = 512, next to its [512, 16] weight tile.)
_EXCITE_TILE = 4096
_PARTIALS_TILE, _PARTIALS_ROWS = 2048, 32
MAX_SQUEEZE = 512


@triton.jit
def _channel_sums_kernel(x_ptr, out_ptr, C, HW, W, sx_n, sx_c, sx_h, sx_w,
                         BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr):
    # One program per (image, channel block) walks all pixels: no atomics, deterministic sums.
    n = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    acc = tl.zeros((BLOCK_HW, BLOCK_C), dtype=tl.float32)
    base = x_ptr + n * sx_n + c[None, :].to(tl.int64) * sx_c
    for p0 in range(0, HW, BLOCK_HW):
        p = p0 + tl.arange(0, BLOCK_HW)
        off = (p // W).to(tl.int64) * sx_h + (p % W).to(tl.int64) * sx_w
        acc += tl.load(base + off[:, None], mask=(p < HW)[:, None] & c_mask[None, :], other=0.0).to(tl.float32)
    tl.store(out_ptr + n * C + c, tl.sum(acc, axis=0), mask=c_mask)


@triton.jit
def _se_excite_kernel(sums_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, inv_hw, C, S, P,
                      ss_n, ss_p, ss_c, sw1_s, sw1_c, sb1, sw2_c, sw2_s, sb2,
                      ACT: tl.constexpr, GATE: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr,
                      BLOCK_R: tl.constexpr):
    # One program per image: fc1 over channel blocks into a hidden vector held in registers,
    # then fc2 + gate per channel block. sums is [N, P, C]: the channel sums are the sum over its
    # P rows (partial sums per pixel block), added in a fixed order: deterministic.
    n = tl.program_id(0).to(tl.int64)
    s = tl.arange(0, BLOCK_S)
    s_mask = s < S
    r = tl.arange(0, BLOCK_R)
    hidden = tl.zeros((BLOCK_S,), dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_mask = c < C
        acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
        for p0 in range(0, P, BLOCK_R):
            p = p0 + r
            acc += tl.load(sums_ptr + n * ss_n + p[:, None] * ss_p + c[None, :] * ss_c,
                           mask=(p < P)[:, None] & c_mask[None, :], other=0.0)
        mean = tl.sum(acc, axis=0) * inv_hw
        w1 = tl.load(w1_ptr + s[:, None] * sw1_s + c[None, :] * sw1_c,
                     mask=s_mask[:, None] & c_mask[None, :], other=0.0).to(tl.float32)
        hidden += tl.sum(w1 * mean[None, :], axis=1)
    hidden = activation(hidden + tl.load(b1_ptr + s * sb1, mask=s_mask, other=0.0).to(tl.float32), ACT)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_mask = c < C
        # Padded s columns carry weight 0, so act(0 + 0) in the padded hidden entries is harmless.
        w2 = tl.load(w2_ptr + c[:, None] * sw2_c + s[None, :] * sw2_s,
                     mask=c_mask[:, None] & s_mask[None, :], other=0.0).to(tl.float32)
        z = tl.sum(w2 * hidden[None, :], axis=1) + tl.load(b2_ptr + c * sb2, mask=c_mask, other=0.0).to(tl.float32)
        tl.store(out_ptr + n * C + c, activation(z, GATE), mask=c_mask)


@triton.jit
def _se_scale_kernel(x_ptr, scale_ptr, out_ptr, M, C, HW, W, sx_n, sx_c, sx_h, sx_w, ss_n, ss_c,
                     so_n, so_c, so_h, so_w, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    c = (tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int64)
    mask = (m < M)[:, None] & (c < C)[None, :]
    img = (m // HW).to(tl.int64)
    h = (m % HW) // W
    w = m % W
    x = tl.load(x_ptr + (img * sx_n + h * sx_h + w * sx_w)[:, None] + c[None, :] * sx_c, mask=mask, other=0.0)
    s = tl.load(scale_ptr + img[:, None] * ss_n + c[None, :] * ss_c, mask=mask, other=0.0)
    y = (x.to(tl.float32) * s).to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + (img * so_n + h * so_h + w * so_w)[:, None] + c[None, :] * so_c, y, mask=mask)


def channel_sums(x: torch.Tensor) -> torch.Tensor:
    """Launcher of effkernels::channel_sums: fp32 [N, C] spatial sums."""
    n, c, h, w = x.shape
    out = torch.empty((n, c), dtype=torch.float32, device=x.device)
    if out.numel() == 0:
        return out
    if h * w == 0:
        return out.zero_()
    grid = (n, triton.cdiv(c, _SUMS_BLOCK_C))
    _channel_sums_kernel[grid](x, out, c, h * w, w, *x.stride(), BLOCK_HW=_SUMS_BLOCK_HW, BLOCK_C=_SUMS_BLOCK_C)
    return out


def _excite_blocks(s: int, c: int, p: int = 1):
    """(BLOCK_S, BLOCK_C, BLOCK_R) for S squeeze channels, C channels and P rows of partial sums."""
    block_s = max(16, triton.next_power_of_2(s))
    block_c = max(16, min(_EXCITE_TILE // block_s, triton.next_power_of_2(c)))
    block_r = 1 if p == 1 else min(_PARTIALS_ROWS, _PARTIALS_TILE // block_c)
    return block_s, block_c, block_r


def se_excite(sums, inv_hw: float, w1, b1, w2, b2, activation: int, gate: int) -> torch.Tensor:
    """Launcher of effkernels::se_excite: gate(w2 @ act(w1 @ (sums * inv_hw) + b1) + b2), fp32 [N, C].

    sums: fp32 [N, C], or [N, P, C] partial sums (any strides) whose sum over dim 1 are the channel
    sums, as `triton.dwconv_bn_act.dwconv_bn_act_partials` leaves them. One launch.
    """
    if sums.dim() == 2:
        sums = sums.unsqueeze(1)  # a view: [N, 1, C]
    n, p, c = sums.shape
    s = w1.shape[0]
    out = torch.empty((n, c), dtype=torch.float32, device=sums.device)
    if n == 0:
        return out
    block_s, block_c, block_r = _excite_blocks(s, c, p)
    _se_excite_kernel[(n,)](sums, w1, b1, w2, b2, out, inv_hw, c, s, p, *sums.stride(), *w1.stride(),
                            b1.stride(0), *w2.stride(), b2.stride(0),
                            ACT=activation, GATE=gate, BLOCK_S=block_s, BLOCK_C=block_c, BLOCK_R=block_r,
                            num_warps=4)
    return out


def se_scale(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Launcher of effkernels::se_scale: x * scale[n, c] in x's dtype and memory format."""
    n, c, h, w = x.shape
    out = empty_like_layout(x, x.shape)
    if out.numel() == 0:
        return out
    grid = (triton.cdiv(n * h * w, _SCALE_BLOCK_M), triton.cdiv(c, _SCALE_BLOCK_C))
    _se_scale_kernel[grid](x, scale, out, n * h * w, c, h * w, w, *x.stride(), *scale.stride(), *out.stride(),
                           BLOCK_M=_SCALE_BLOCK_M, BLOCK_C=_SCALE_BLOCK_C)
    return out


def aot_variants():
    """(kernel, signature, constexprs) per kernel x dtype (x's dtype; the SE weights' for
    se_excite) for effkernels.triton._aot; channels_last strides, channel stride 1 specialized."""
    out = []
    for dt in TRITON_DTYPES.values():
        out.append((_channel_sums_kernel,
                    dict(x_ptr=f"*{dt}:16", out_ptr="*fp32:16", C="i32:16", HW="i32", W="i32", sx_n="i32:16",
                         sx_c="constexpr", sx_h="i32:16", sx_w="i32:16", BLOCK_HW="constexpr", BLOCK_C="constexpr"),
                    dict(sx_c=1, BLOCK_HW=_SUMS_BLOCK_HW, BLOCK_C=_SUMS_BLOCK_C, num_warps=4, num_stages=3)))
        out.append((_se_scale_kernel,
                    dict(x_ptr=f"*{dt}:16", scale_ptr="*fp32:16", out_ptr=f"*{dt}:16", M="i32", C="i32:16",
                         HW="i32", W="i32", sx_n="i32:16", sx_c="constexpr", sx_h="i32:16", sx_w="i32:16",
                         ss_n="i32:16", ss_c="constexpr", so_n="i32:16", so_c="constexpr", so_h="i32:16",
                         so_w="i32:16", BLOCK_M="constexpr", BLOCK_C="constexpr"),
                    dict(sx_c=1, ss_c=1, so_c=1, BLOCK_M=_SCALE_BLOCK_M, BLOCK_C=_SCALE_BLOCK_C,
                         num_warps=4, num_stages=3)))
        # The excite MLP's tile shape depends on S (the smallest and the largest S it accepts) and
        # C (wide, and 32: the narrowest EfficientNet block), BLOCK_R on whether the sums come in
        # one row ([N, C]: P = 1, a constexpr as the JIT specializes it) or in pixel-block partials.
        # Each (activation, gate) pair the op accepts once, on the first shape.
        acts = [(3, 5)] * 6 + [(1, 5), (3, 6), (1, 6)]
        for (s, c, p), (act, gate) in zip(((16, 1024, 1), (16, 1024, 2), (MAX_SQUEEZE, 1024, 1),
                                           (MAX_SQUEEZE, 1024, 2), (16, 32, 1), (16, 32, 2), (16, 1024, 1),
                                           (16, 1024, 1), (16, 1024, 1)), acts):
            block_s, block_c, block_r = _excite_blocks(s, c, p)
            rows_value = dict(P=1) if p == 1 else {}
            out.append((_se_excite_kernel,
                        dict(sums_ptr="*fp32:16", w1_ptr=f"*{dt}:16", b1_ptr=f"*{dt}:16", w2_ptr=f"*{dt}:16",
                             b2_ptr=f"*{dt}:16", out_ptr="*fp32:16", inv_hw="fp32", C="i32:16", S="i32",
                             P="constexpr" if p == 1 else "i32", ss_n="i32:16", ss_p="i32:16",
                             ss_c="constexpr", sw1_s="i32:16", sw1_c="constexpr", sb1="constexpr",
                             sw2_c="i32", sw2_s="constexpr", sb2="constexpr", ACT="constexpr",
                             GATE="constexpr", BLOCK_S="constexpr", BLOCK_C="constexpr", BLOCK_R="constexpr"),
                        dict(ss_c=1, sw1_c=1, sb1=1, sw2_s=1, sb2=1, ACT=act, GATE=gate, BLOCK_S=block_s,
                             BLOCK_C=block_c, BLOCK_R=block_r, **rows_value, num_warps=4, num_stages=3)))
    return out


def hot_loop(kernel, consts):
    """For tools/kernel_report: channel_sums' pixel loop, (input elements one thread adds per iteration, None)."""
    if kernel is _channel_sums_kernel:
        return consts["BLOCK_HW"] * consts["BLOCK_C"] / (32 * consts["num_warps"]), None
    return None
