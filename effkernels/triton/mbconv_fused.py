"""MBConv steps 1-2 in one kernel: the expand 1x1 conv computed inside the depthwise kernel (issue 15).

    e[n, c, ih, iw]   = act(b_exp[c] + sum_ci W_exp[c, ci] * x[n, ci, ih, iw])       (never stored)
    out[n, c, oh, ow] = act(b_dw[c] + sum_{kh, kw} w_dw[c, 0, kh, kw] * e[n, c, ih, iw])
    ih = oh * stride - pad_top + kh,  iw = ow * stride - pad_left + kw   (outside the input: e = 0)

The depthwise conv zero-pads the expanded tensor, so a tap outside the input contributes 0, not
act(b_exp). With SE the epilogue writes fp32 partial sums [N, P_blocks, C_exp] exactly as the
depthwise kernel does (triton/dwconv_bn_act.py: every slot written once, no zero-fill, no atomics),
and the excite reduces them (triton/mbconv.py `with_excite`, shared with the unfused depthwise step).
The project follows the block's GEMM choice (triton/mbconv.py `gemm_paths`): the library GEMM
(`project_into`) with the excite writing per-image weights W' = W * s[n] and this kernel initialising its
output to bias (+ residual) (Y_INIT, `init_project_output` of the depthwise kernel: the programs of a pixel
tile share the C_out channels), or the Triton GEMM with the scale as prologue (ops/mbconv.py). The
expanded tensor, C_exp wide and the block's largest, never exists in memory: per pixel the kernel reads
C_in channels and writes C_exp once.

Tiles. A program owns image n, BLOCK_P output pixels (flattened oh * OW + ow) and BLOCK_C expanded
channels. Per tap (kh, kw) it loads the C_in input channels of the BLOCK_P shifted pixels and runs
tl.dot(x[shifted pixels, C_in], W_exp^T[C_in, BLOCK_C]) on the tensor cores (fp32 operands as tf32x3,
~fp32 accuracy), adds b_exp, applies the activation, zeroes the taps outside the input, and
accumulates times the tap's depthwise weight. With ONE_K (C_in <= BLOCK_K) the W_exp tile is loaded
once and stays on chip across the k^2 taps; wider C_in loops over BLOCK_K slices per tap. Any strides: channels_last (channel stride 1, the fast layout: VEC makes the input rows
provably 16-byte aligned when C_in is a multiple of 8 in fp16/bf16, 4 in fp32, as in the depthwise
kernel) and NCHW alike, no transpose. Program ids walk channel blocks first, so the programs that
read the same input pixels run together. Expanded values stay fp32 (the unfused path rounds them to
x's dtype when it stores them).

Recomputed expand. Triton cannot shift a register tile by one pixel, so each output pixel recomputes
the expand of its k^2 taps: the expand's tensor-core FLOPs and its activations grow from
N*H*W*C_exp elements to N*OH*OW*k^2*C_exp, a factor k^2*OH*OW / (H*W) ~ k^2 / stride^2 (9 at k3 s1,
25 at k5 s1, 2.25 at k3 s2, 6.25 at k5 s2); `path_costs` counts them per path. The FLOPs are cheap
(K = C_in is small); the activations are not: SiLU is 2 MUFU ops in fp32 and 1 in fp16/bf16
(activation's FAST form), and an H200's MUFU rate (~4.2e12/s) is about its copy bandwidth in bytes/s,
so per output element the fused kernel spends k^2 MUFU ops (bf16) where the unfused path moves
~4 stride^2 + 2 bytes. By those floors (`path_costs`, `estimate_us`, over `ACHIEVED`) the bf16 fused
path wins at stride 2 and (narrowly) at k 3 stride 1, and loses at k 5 stride 1, where the recomputed
taps' instructions dominate; fp32 (2-MUFU SiLU, tf32x3 MMAs) fuses less; measured times decide (below).

Path choice. `TABLE` is a KernelConfigs whose candidates are the fused tiles plus `UNFUSED`, so the
tuner (`python -m effkernels.tune`, timing every candidate of the launcher `expand_dw_se` by device
time) decides per shape whether to fuse: with `UNFUSED` the launcher runs the same steps as the
unfused block (pointwise_conv expand, depthwise + SE partials, se_excite). Without a table the
heuristic compares `estimate_us` of both paths (the floors of `path_costs` at an H200's ceilings),
each divided by the fraction of it the path reaches (`ACHIEVED`: measured for the unfused kernels,
guessed for the fused one).
`mbconv_path` says which path a block takes (ops/mbconv.py, convert's report, the benchmarks). Under
the interpreter (the CPU tests) the pick is `UNFUSED`, so the block tests keep testing the unfused
path; tests/test_mbconv_fused.py pins the fused tiles.

Limits: those of the depthwise kernel (k in 1/3/5/7, stride 1/2: `mbconv_path` says "unfused"
outside them and the unfused path raises the error); fp32 / fp16 / bf16, parameters in x's dtype.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._common import ACTIVATIONS, CONV_ACTIVATIONS, conv_geometry, empty_like_layout, is_channels_last, tap_major
from ..backends import triton_interpreted
from ..ops.dwconv_bn_act import KERNEL_SIZES
from ._common import (TRITON_DTYPES, KernelConfigs, activation, launch_options, multiples_of, torch_dtype,
                      vector_width)
from .dwconv_bn_act import init_project_output, pixel_tile, y_init_args
from .mbconv import dw_se, expand_preactivation, library_allowed, with_excite
from .pointwise_conv import pointwise_conv

_FIELDS = ("dtype", "N", "C_IN", "C_EXP", "H", "W", "K", "STRIDE", "ACT", "CHANNELS_LAST")
_CATEGORICAL = ("dtype", "K", "STRIDE", "ACT", "CHANNELS_LAST")


def _fused(p, c, k, warps, stages=1):
    return triton.Config({"BLOCK_P": p, "BLOCK_C": c, "BLOCK_K": k}, num_warps=warps, num_stages=stages)


# Per tap, 4 warps hold BLOCK_P x BLOCK_C / 128 fp32 values twice (the depthwise sum and the tap's expand):
# 64 x 64 tiles take ~170 registers on sm_90, 8 warps ~100.
FUSED_CONFIGS = [
    _fused(64, 64, 16, 4),       # C_in = 16 (stage 2 of B0..B2): the whole K in one MMA step
    _fused(64, 64, 32, 4),       # C_in = 24, 32; wider C_in in slices of 32
    _fused(64, 64, 64, 4),       # C_in = 40..64; wider C_in in slices of 64
    _fused(128, 32, 32, 4),      # C_exp = 96, 144: 64-channel blocks would compute a quarter masked off
    _fused(32, 64, 32, 4),       # small maps, batch 1: more programs
    _fused(64, 64, 16, 8, 2),    # 8 warps: half the registers per thread; x loads pipelined across taps
]
# The unfused block's steps (expand GEMM, depthwise + SE partials): a candidate like the tiles, so a
# tuned table can say "do not fuse" per shape. Not a kernel constexpr: the launcher branches on it.
UNFUSED = triton.Config({"PATH": "unfused"}, num_warps=4, num_stages=1)
_SMS = 132  # an H100/H200's SM count: the heuristic's notion of "enough programs"


def is_unfused(config: triton.Config) -> bool:
    return config.kwargs.get("PATH") == "unfused"


# ---- cost model: floors per path, for the heuristic and the benchmark report -----------------------------

# An H200's ceilings (../shared/docs/GPU-REVIEW.md): copy bandwidth ~4.2 TB/s (measured), MUFU 16 ops/clk/SM
# ~4.2e12/s, issue 4 warp-instructions/clk/SM ~1.05e12/s (x 32 threads), dense bf16 MMA ~790 TFLOP/s
# (measured). fp32 operands run as tf32x3: three MMAs at half the bf16 rate.
H200 = dict(bytes_per_s=4.2e12, mufu_per_s=4.2e12, instructions_per_s=1.05e12 * 32, mma_flops_per_s=7.9e14)
# The fractions of their floors the paths reach, for the heuristic until a GPU run measures them: the unfused
# kernels' is measured (README, H200 2026-11-28: the Triton depthwise kernel at 39-45% of copy bandwidth on
# the heaviest layers); the fused kernel's is a guess for a MUFU-bound kernel.
ACHIEVED = {"fused": 0.8, "unfused": 0.4}
# Per activated element: (MUFU ops, other SASS instructions) of triton._common.activation on sm_90, by the
# kernels' output width. fp32: SiLU's fast division keeps a range check (FSETP, FMUL, FSEL) next to EX2 and
# RCP. fp16/bf16 outputs take the one-MUFU SiLU (activation's FAST: FMUL, MUFU.TANH, FFMA).
_ACT_COST = {"none": (0, 0), "relu": (0, 1), "relu6": (0, 2), "silu": (2, 7), "hardswish": (0, 5)}
_ACT_COST_16BIT = {**_ACT_COST, "silu": (1, 2)}
# Per tap and element of the fused kernel besides the activation: bias add, mask select, depthwise FMA, and
# the tap's addressing, loads and conversions (sm_90 SASS of the bf16 64 x 64 tile: 527 instructions per tap
# for 32 elements a thread, 16.5 each, 9 of them SiLU's).
_FUSED_TAP = 7.5
_ACT_NAMES = {code: name for name, code in ACTIVATIONS.items()}


def expand_recompute(h: int, w: int, k: int, stride: int, out_h: int | None = None, out_w: int | None = None) -> float:
    """How many times the fused kernel computes each expanded element (tensor-core FLOPs and activations):
    k^2 * out_h * out_w / (h * w), ~k^2 / stride^2. out_h/out_w default to TF SAME's ceil(h / stride)."""
    out_h = -(-h // stride) if out_h is None else out_h
    out_w = -(-w // stride) if out_w is None else out_w
    return k * k * out_h * out_w / (h * w)


def path_costs(n: int, c_in: int, c_exp: int, h: int, w: int, k: int, stride: int, activation: str = "silu",
               dtype_bytes: int = 2, out_h: int | None = None, out_w: int | None = None) -> dict:
    """Floor counts of a block's expand + depthwise (+ SE partials) on each path, one dict per kernel:
    {"fused": [kernel], "unfused": [expand, depthwise]}, each {"bytes": HBM bytes (every tensor read or
    written once), "mma_flops": expand tensor-core FLOPs, "mufu": MUFU ops, "instructions": per-thread
    instructions of the elementwise work (activations, masks, depthwise FMAs; the unfused kernels' loads and
    addressing not counted)}.
    The fused kernel's extra FLOPs are fused mma_flops - unfused mma_flops: (expand_recompute - 1) times
    the expand's 2 * N * H * W * C_in * C_exp."""
    out_h = -(-h // stride) if out_h is None else out_h
    out_w = -(-w // stride) if out_w is None else out_w
    mufu, alu = (_ACT_COST_16BIT if dtype_bytes == 2 else _ACT_COST)[activation]
    taps = k * k
    e_in = n * h * w * c_exp            # expanded elements
    e_out = n * out_h * out_w * c_exp   # depthwise outputs
    x_bytes = n * h * w * c_in * dtype_bytes
    # Per output (both depthwise kernels): bias add, activation, conversion on store. Unfused depthwise taps:
    # convert + FMA.
    fused = dict(bytes=x_bytes + e_out * dtype_bytes, mma_flops=2 * c_in * e_out * taps, mufu=e_out * (taps + 1) * mufu,
                 instructions=e_out * (taps * (_FUSED_TAP + alu + mufu) + 2 + alu + mufu))
    expand = dict(bytes=x_bytes + e_in * dtype_bytes, mma_flops=2 * c_in * e_in, mufu=e_in * mufu,
                  instructions=e_in * (2 + alu + mufu))
    depthwise = dict(bytes=(e_in + e_out) * dtype_bytes, mma_flops=0, mufu=e_out * mufu,
                     instructions=e_out * (2 * taps + 2 + alu + mufu))
    return {"fused": [fused], "unfused": [expand, depthwise]}


def estimate_us(kernels: list, dtype_bytes: int = 2, ceilings: dict = H200) -> float:
    """Floor time of a path (a list of path_costs' kernel dicts), in us: per kernel the slowest of its
    bytes, MUFU ops, instructions and MMA FLOPs at `ceilings`, summed over the kernels."""
    mma_rate = ceilings["mma_flops_per_s"] / (6 if dtype_bytes == 4 else 1)
    return 1e6 * sum(max(kc["bytes"] / ceilings["bytes_per_s"], kc["mufu"] / ceilings["mufu_per_s"],
                         kc["instructions"] / ceilings["instructions_per_s"], kc["mma_flops"] / mma_rate)
                     for kc in kernels)


# ---- tile and path choice ----------------------------------------------------------------------------------

def fits(config: triton.Config, dtype: str) -> bool:
    """fp32 dots run as tf32x3 (operands split in two, three MMAs): with more than 24 operand elements per
    thread per K step, (BLOCK_P + BLOCK_C) * BLOCK_K > 24 * 32 * num_warps, the tile spills registers on
    sm_80 (kernel_report; the same bound as pointwise_conv's tiles)."""
    kw = config.kwargs
    return dtype != "fp32" or (kw["BLOCK_P"] + kw["BLOCK_C"]) * kw["BLOCK_K"] <= 24 * 32 * config.num_warps


def _candidates(key):
    """The fused tiles that fit the key's dtype (a K slice wider than C_in only multiplies zeros, cheap next to
    the activations), and UNFUSED; every config for key None."""
    if key is None:
        return FUSED_CONFIGS + [UNFUSED]
    return [c for c in FUSED_CONFIGS if fits(c, key[0])] + [UNFUSED]


def _heuristic(key):
    """Without a table: the path with the lower `estimate_us` floor divided by its ACHIEVED fraction. For the
    fused path, among the tiles that fit the dtype: the small tile when the common one makes too few
    programs, 32-channel blocks when C_exp is not a multiple of 64, else the 64 x 64 tile whose K slice
    holds C_in (up to 64), else the first."""
    dtype, n, c_in, c_exp, h, w, k, stride, act, _ = key
    dtype_bytes = 4 if dtype == "fp32" else 2
    costs = path_costs(n, c_in, c_exp, h, w, k, stride, _ACT_NAMES[act], dtype_bytes)
    if (estimate_us(costs["fused"], dtype_bytes) / ACHIEVED["fused"]
            >= estimate_us(costs["unfused"], dtype_bytes) / ACHIEVED["unfused"]):
        return UNFUSED
    pixels = -(-h // stride) * -(-w // stride)
    block_k = min(64, max(16, triton.next_power_of_2(c_in)))
    if n * triton.cdiv(pixels, 64) * triton.cdiv(c_exp, 64) < 2 * _SMS:
        wanted = FUSED_CONFIGS[4]
    elif c_exp % 64:
        wanted = FUSED_CONFIGS[3]
    else:
        wanted = next(c for c in FUSED_CONFIGS[:3] if c.kwargs["BLOCK_K"] == block_k)
    return wanted if fits(wanted, dtype) else FUSED_CONFIGS[0]


TABLE = KernelConfigs("mbconv_expand_dw", _FIELDS, _CATEGORICAL, _candidates, _heuristic, interpreter=UNFUSED)


def _key(dtype, n, c_in, c_exp, h, w, k, stride, act_code, channels_last):
    return (TRITON_DTYPES[dtype], n, c_in, c_exp, h, w, k, stride, act_code, bool(channels_last))


def mbconv_path(dtype: torch.dtype, n: int, c_in: int, c_exp: int, h: int, w: int, k: int, stride: int,
                activation: str = "silu", channels_last: bool = True, device=None) -> str:
    """"fused" or "unfused": the path ops.mbconv's Triton backend takes for a block with an expand conv
    (C_in -> C_exp, k x k depthwise at `stride` on an h x w input): the tuned table of `device` (default:
    the current CUDA device, else the CPU, which has no table: the heuristic), else the heuristic.
    Blocks without an expand conv, or outside the depthwise kernel's limits, are "unfused"."""
    if c_exp is None or k not in KERNEL_SIZES or stride not in (1, 2) or activation not in CONV_ACTIVATIONS:
        return "unfused"
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
    key = _key(dtype, n, c_in, c_exp, h, w, k, stride, ACTIVATIONS[activation], channels_last)
    return "unfused" if is_unfused(TABLE.pick(key, torch.device(device))) else "fused"


# ---- the kernel --------------------------------------------------------------------------------------------

@triton.jit
def _expand_dw_kernel(
    x_ptr, we_ptr, be_ptr, wd_ptr, bd_ptr, out_ptr, sums_ptr, y_ptr, y_b_ptr, res_ptr,
    C_IN, C_EXP, H, W, OH, OW, pad_top, pad_left, C_Y,
    sx_n, sx_c, sx_h, sx_w,
    swe_o, swe_i, sbe,
    swd_c, swd_h, swd_w, sbd,
    so_n, so_c, so_h, so_w,
    ss_n,                      # partial sums [N, >= P_blocks, C_EXP]: image stride (pixel block C_EXP, channel 1)
    sy_n, sy_h, sy_w, sr_n, sr_h, sr_w,   # Y_INIT's y and residual (channel stride 1)
    K: tl.constexpr, STRIDE: tl.constexpr, ACT: tl.constexpr, SE_SUMS: tl.constexpr, ONE_K: tl.constexpr,
    VEC: tl.constexpr, DOT_FP32: tl.constexpr, Y_INIT: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # VEC (channels_last: 16 bytes of elements, else 1) divides C_IN and x's pixel strides (the launcher
    # checks): the input rows are provably 16-byte aligned also when C_in = 24, 40.
    C_IN, sx_n, sx_h, sx_w = multiples_of((C_IN, sx_n, sx_h, sx_w), VEC)
    FAST: tl.constexpr = out_ptr.dtype.element_ty != tl.float32  # fp16/bf16 outputs: the one-MUFU SiLU
    pid = tl.program_id(0)
    num_cb = tl.cdiv(C_EXP, BLOCK_C)
    num_pb = tl.cdiv(OH * OW, BLOCK_P)
    cb = pid % num_cb
    pb = (pid // num_cb) % num_pb
    n = pid // (num_cb * num_pb)

    c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    ci = tl.arange(0, BLOCK_K)
    c_mask = c < C_EXP
    p_mask, oh, ow, ih0, iw0 = pixel_tile(pb, OH, OW, pad_top, pad_left, STRIDE, BLOCK_P)
    x_img = x_ptr + n.to(tl.int64) * sx_n
    # Weights have far fewer than 2**31 elements: int32 offsets (per column: registers in the MMA layout).
    we_tile = we_ptr + c[None, :] * swe_o + ci[:, None] * swe_i   # W_exp^T [BLOCK_K, BLOCK_C]
    wd_c = c * swd_c
    be = tl.load(be_ptr + c * sbe, mask=c_mask, other=0.0).to(tl.float32)
    if ONE_K:  # the whole W_exp tile stays in registers across the k^2 taps
        we = tl.load(we_tile, mask=(ci < C_IN)[:, None] & c_mask[None, :], other=0.0)
        if DOT_FP32:  # the interpreter multiplies bf16 bit patterns in tl.dot (triton#11584)
            we = we.to(tl.float32)

    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    # Both tap loops stay loops: with kw unrolled, three taps' expand tiles were in flight (255 registers and
    # spills on sm_90). num_stages > 1 lets Triton prefetch the next tap's x tile (cp.async).
    for kh in range(K):
        ih = ih0 + kh
        h_ok = p_mask & (ih >= 0) & (ih < H)
        row = x_img + ih.to(tl.int64) * sx_h
        for kw in range(K):
            iw = iw0 + kw
            ok = h_ok & (iw >= 0) & (iw < W)
            x_pix = row + iw.to(tl.int64) * sx_w
            if ONE_K:
                xt = tl.load(x_pix[:, None] + ci[None, :] * sx_c, mask=ok[:, None] & (ci < C_IN)[None, :], other=0.0)
                if DOT_FP32:
                    xt = xt.to(tl.float32)
                # tf32x3 keeps fp32 operands at ~fp32 accuracy; fp16/bf16 operands ignore it.
                e = tl.dot(xt, we, input_precision="tf32x3")
            else:
                e = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
                for k0 in range(0, C_IN, BLOCK_K):
                    k_ok = (k0 + ci) < C_IN
                    xt = tl.load(x_pix[:, None] + (k0 + ci)[None, :] * sx_c, mask=ok[:, None] & k_ok[None, :],
                                 other=0.0)
                    wt = tl.load(we_tile + k0 * swe_i, mask=k_ok[:, None] & c_mask[None, :], other=0.0)
                    if DOT_FP32:
                        xt = xt.to(tl.float32)
                        wt = wt.to(tl.float32)
                    e = tl.dot(xt, wt, e, input_precision="tf32x3")
            # Zero padding belongs to the expanded tensor: a tap outside the input adds 0, not act(b_exp).
            e = tl.where(ok[:, None], activation(e + be[None, :], ACT, FAST), 0.0)
            wd = tl.load(wd_ptr + (wd_c + kh * swd_h + kw * swd_w), mask=c_mask, other=0.0).to(tl.float32)
            acc += e * wd[None, :]

    bd = tl.load(bd_ptr + c * sbd, mask=c_mask, other=0.0).to(tl.float32)
    y = activation(acc + bd[None, :], ACT, FAST)
    mask = p_mask[:, None] & c_mask[None, :]
    o_pix = n.to(tl.int64) * so_n + oh.to(tl.int64) * so_h + ow.to(tl.int64) * so_w
    tl.store(out_ptr + o_pix[:, None] + c.to(tl.int64)[None, :] * so_c, y.to(out_ptr.dtype.element_ty), mask=mask)
    if SE_SUMS:
        tl.store(sums_ptr + n.to(tl.int64) * ss_n + pb * C_EXP + c, tl.sum(tl.where(mask, y, 0.0), axis=0),
                 mask=c_mask)
    if Y_INIT > 0:  # the library project's output, as the depthwise kernel writes it (last: fewest registers live)
        init_project_output(y_ptr + n.to(tl.int64) * sy_n, res_ptr + n.to(tl.int64) * sr_n,
                            oh * sy_h + ow * sy_w, oh * sr_h + ow * sr_w, p_mask, y_b_ptr,
                            tl.arange(0, BLOCK_C), cb, num_cb, C_Y, Y_INIT, BLOCK_P, BLOCK_C)


# ---- launchers ---------------------------------------------------------------------------------------------

def expand_dw_partials(x, expand_w, expand_b, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, act_code,
                       se_sums, config, y_init=None):
    """Launch the fused kernel with a fused `config` (one of FUSED_CONFIGS). Returns (out, partials): out
    [N, C_exp, out_h, out_w] in x's dtype and memory format; partials fp32 [N, P_blocks, C_exp] whose sum
    over dim 1 is the SE sums (P_blocks = cdiv(out_h * out_w, BLOCK_P)), None without se_sums.
    y_init = (y [N, C_Y, out_h, out_w] channels_last, y_bias [C_Y] contiguous, residual or None): the kernel
    also writes y = y_bias (+ residual) for the library project, as the depthwise kernel's y_init does."""
    n, c_in, h, w = x.shape
    c_exp, k = expand_w.shape[0], dw_w.shape[-1]
    out = empty_like_layout(x, (n, c_exp, out_h, out_w))
    launch = launch_options(config)
    pixels = out_h * out_w
    partials = (torch.empty((n, triton.cdiv(pixels, launch["BLOCK_P"]), c_exp), dtype=torch.float32, device=x.device)
                if se_sums else None)
    if out.numel() == 0:
        return out, partials  # partials has no elements either
    vec = vector_width(x, (c_in, x.stride(0), x.stride(2), x.stride(3))) if is_channels_last(x) else 1
    # Without se_sums the kernel never touches sums_ptr: an uninitialised stand-in (no kernel runs).
    sums_arg = partials if se_sums else torch.empty(1, dtype=torch.float32, device=x.device)
    y, y_b, res, mode = y_init_args(y_init, out, expand_b)
    grid = (n * triton.cdiv(pixels, launch["BLOCK_P"]) * triton.cdiv(c_exp, launch["BLOCK_C"]),)
    _expand_dw_kernel[grid](
        x, expand_w, expand_b, dw_w, dw_b, out, sums_arg, y, y_b, res,
        c_in, c_exp, h, w, out_h, out_w, pad_top, pad_left, y.shape[1],
        *x.stride(), *expand_w.stride(), expand_b.stride(0),
        dw_w.stride(0), dw_w.stride(2), dw_w.stride(3), dw_b.stride(0),
        *out.stride(), sums_arg.stride(0),
        y.stride(0), y.stride(2), y.stride(3), res.stride(0), res.stride(2), res.stride(3),
        K=k, STRIDE=stride, ACT=act_code, SE_SUMS=bool(se_sums), ONE_K=c_in <= launch["BLOCK_K"],
        VEC=vec, DOT_FP32=triton_interpreted() and x.dtype == torch.bfloat16, Y_INIT=mode, **launch,
    )
    return out, partials


def expand_dw_se(x, expand_w, expand_b, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, act, se_w1, se_b1,
                 se_w2, se_b2, se_act, se_gate, proj_w, proj_b, residual, config=None):
    """MBConv steps 1-3 (expand, depthwise, SE excite), arguments as the effkernels_triton::mbconv_expand_dw_se
    schema (checked by ops/mbconv.py). Returns (out, se_out, y) as triton.mbconv.dw_se: the depthwise output in
    x's dtype and memory format; without proj_w the fp32 [N, C_exp] SE scale (empty without SE) for the Triton
    project; with proj_w (the library project: x dense channels_last) the per-image weights W' = proj_w * s[n]
    (empty without SE: W' = proj_w) and y initialised to proj_b (+ residual) for `project_into`.
    `config`: a fused tile or UNFUSED to run instead of the picked one (tests and the tuner). Fused: 2 launches
    with SE, 1 without; UNFUSED: one more (the expand GEMM)."""
    if config is None:
        config = TABLE.pick(_key(x.dtype, x.shape[0], x.shape[1], expand_w.shape[0], x.shape[2], x.shape[3],
                                 dw_w.shape[-1], stride, act, is_channels_last(x)), x.device)
    geom = (stride, pad_top, pad_left, out_h, out_w, act)
    rest = (se_w1, se_b1, se_w2, se_b2, se_act, se_gate, proj_w, proj_b, residual)
    if is_unfused(config):  # the unfused steps 1-3, with the library expand wherever the block may use one
        if library_allowed(x, expand_w.shape[0], out_h, out_w):
            h, pre = expand_preactivation(x, expand_w), (expand_b, act)
        else:
            h, pre = pointwise_conv(x, expand_w, expand_b, act, None, None), (None, act)
        return dw_se(h, dw_w, dw_b, *geom, *pre, *rest)

    def depthwise(se_sums, y_init):
        return expand_dw_partials(x, expand_w, expand_b, dw_w, dw_b, *geom, se_sums, config, y_init)
    return with_excite(depthwise, x, out_h, out_w, *rest)


@TABLE.runner
def _runner(key, device):
    """For the tuner: random inputs of `key` as an EfficientNet block calls `expand_dw_se` (padding (k - 1) // 2,
    tap-major depthwise weight, SE with squeeze C_in / 4); returns run(config), a fused tile or UNFUSED."""
    dtype, n, c_in, c_exp, h, w, k, stride, act, channels_last = key
    like = dict(device=device, dtype=torch_dtype(dtype))
    x = torch.randn(n, c_in, h, w, **like)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    s = max(1, c_in // 4)
    params = (torch.randn(c_exp, c_in, **like) / c_in**0.5, torch.randn(c_exp, **like),
              tap_major(torch.randn(c_exp, 1, k, k, **like) / k), torch.randn(c_exp, **like))
    se_ws = (torch.randn(s, c_exp, **like) / c_exp**0.5, torch.randn(s, **like), torch.randn(c_exp, s, **like) / s**0.5,
             torch.randn(c_exp, **like))
    geom = conv_geometry(h, w, k, stride, (k - 1) // 2)
    return lambda config: expand_dw_se(x, *params, stride, *geom, act, *se_ws, act, ACTIVATIONS["sigmoid"],
                                       None, None, None, config=config)


def aot_variants():
    """Every (kernel, signature, constexprs) the launcher can request, for effkernels.triton._aot.

    Arguments typed as the JIT specializes them: channels_last x (C_in = 16: ":16" hints) or contiguous
    NCHW x, a contiguous [C_exp, C_in] weight and the depthwise weight tap-major as the layers fold it for this
    backend (nn/_base.py; [C_exp, 1, k, k] storage once per dtype), C_exp a multiple of 16 (every 6x expand
    of EfficientNet: C_in is a multiple of 8). Per dtype: every fused config that `fits` it at the target
    case (k 3, stride 2, SiLU, SE sums, channels_last, ONE_K), then with the first such config the K loop
    (ONE_K False) and NCHW (VEC 1), and C_in = 24 (no ":16" hints: alignment from VEC alone), and the library
    project's output initialised (Y_INIT 1, and 2 with the residual x; C_out a multiple of 16, and C_out =
    C_in = 24); without Y_INIT, out and expand_b stand in for y, y_bias and the residual. Once, in bf16: every
    other value of each constexpr (k 1/5/7, stride 1, each activation, no SE sums, VEC 1 on channels_last).
    """
    from .._common import CONV_ACTIVATIONS

    fn = _expand_dw_kernel
    out = []
    for dt in TRITON_DTYPES.values():
        vec = 4 if dt == "fp32" else 8
        ptrs = {a: f"*{dt}:16" for a in ("x_ptr", "we_ptr", "be_ptr", "wd_ptr", "bd_ptr", "out_ptr", "y_ptr",
                                         "y_b_ptr", "res_ptr")}
        common = dict(ptrs, sums_ptr="*fp32:16", C_EXP="i32:16", H="i32", W="i32", OH="i32", OW="i32",
                      pad_top="i32", pad_left="i32", C_Y="i32:16", swe_i=1, sbe=1, swd_c=1, swd_h="i32:16",
                      swd_w="i32:16", sbd=1, ss_n="i32:16")

        def stand_ins(sig):  # Y_INIT 0: out stands in for y and the residual
            return dict(sig, **{f"s{t}_{d}": sig[f"so_{d}"] for t in "yr" for d in "nhw"})
        nhwc = stand_ins(dict(common, C_IN="i32:16", sx_n="i32:16", sx_c=1, sx_h="i32:16", sx_w="i32:16",
                              swe_o="i32:16", so_n="i32:16", so_c=1, so_h="i32:16", so_w="i32:16"))
        nhwc_24 = dict(nhwc, C_IN="i32", sx_n="i32", sx_h="i32", sx_w="i32", swe_o="i32")
        nchw = stand_ins(dict(common, C_IN="i32:16", sx_n="i32", sx_c="i32", sx_h="i32", sx_w=1, swe_o="i32:16",
                              so_n="i32", so_c="i32", so_h="i32", so_w=1))
        # The library project's y (channels_last, C_out channels) and residual x (C_out = C_in).
        y_out = {"C_Y": "i32:16", **{f"s{t}_{d}": "i32:16" for t in "yr" for d in "nhw"}}
        y_out_24 = dict(nhwc_24, C_Y="i32", **{f"s{t}_{d}": "i32" for t in "yr" for d in "nhw"})
        base = dict(K=3, STRIDE=2, ACT=3, SE_SUMS=True, ONE_K=True, VEC=vec, DOT_FP32=False, Y_INIT=0)
        fitting = [c for c in FUSED_CONFIGS if fits(c, dt)]
        k32 = next(c for c in fitting if c.kwargs["BLOCK_K"] >= 32)  # C_in = 24 in one K step
        cases = [(nhwc, cfg, base) for cfg in fitting]
        oihw = dict(nhwc, swd_c="i32", swd_h="i32", swd_w=1)  # [C_exp, 1, k, k] weights, not tap-major
        cases += [(nhwc, fitting[0], dict(base, ONE_K=False)), (nchw, fitting[0], dict(base, VEC=1)),
                  (nhwc_24, k32, base), (oihw, fitting[0], base),
                  (dict(nhwc, **y_out), fitting[0], dict(base, Y_INIT=1)),
                  (dict(nhwc, **y_out), fitting[0], dict(base, STRIDE=1, Y_INIT=2)),
                  (y_out_24, k32, dict(base, STRIDE=1, Y_INIT=2))]
        if dt == "bf16":
            others = ([dict(base, K=k) for k in KERNEL_SIZES if k != 3] + [dict(base, STRIDE=1),
                      dict(base, SE_SUMS=False), dict(base, VEC=1)]
                      + [dict(base, ACT=ACTIVATIONS[a]) for a in CONV_ACTIVATIONS if a != "silu"])
            cases += [(nhwc, FUSED_CONFIGS[0], c) for c in others]
        for sig, cfg, spec in cases:
            consts = {name: v for name, v in sig.items() if isinstance(v, int)}
            consts.update(spec, **cfg.kwargs)
            signature = dict(sig, **{name: "constexpr" for name in consts})
            out.append((fn, signature, dict(consts, num_warps=cfg.num_warps, num_stages=cfg.num_stages)))
    return out
