"""Squeeze-excitation in three kernels: channel sums (squeeze), the excite MLP, and the scale.

Inside an MBConv block the squeeze comes from the depthwise kernel's epilogue, and the scale is
either the prologue of the Triton project GEMM (triton/pointwise_conv.py) or folded into
per-image project weights W'[n] = W * s[n] that `se_excite` writes for a library GEMM
(ops/mbconv.py), so only `se_excite` runs there.

Partial sums. A channel sum is a reduction over H * W pixels; one program walking all of them
serially is latency-bound when N * C / BLOCK_C programs cannot fill the GPU. So the squeeze
kernels split the pixels into P pieces written to an uninitialised fp32 [N, P, C] buffer (every
slot written once: no zero-fill, no atomics, deterministic), and `se_excite` adds the P rows up
while it takes the mean. The depthwise kernel writes the same layout (one row per pixel block).
[N, C] sums are the P = 1 case.

Pixels are visited in chunks of BLOCK_P along a row: when a tensor's (h, w) flatten to one
stride (dense NCHW or NHWC) the image is one row of H * W pixels, else H rows of W. A chunk's row
and column come from one div/mod per chunk, none per pixel; offsets inside an image are int32
(the launchers check the image's extent), the image base int64.

`channel_sums` and `se_scale` serve SE blocks that do not follow a depthwise conv; `squeeze_excite`
is the three in a row (one custom op under torch.compile, launchers called directly otherwise).
All tensors are addressed through their strides (channels_last, NCHW and views alike).
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from .._common import empty_like_layout
from ._common import TRITON_DTYPES, activation

# Pixel x channel tiles of the sums and scale kernels: 4096 elements, 32 per thread at 4 warps.
_BLOCK_P, _BLOCK_C = 64, 64
_SMS = 132  # an H100/H200's SM count: enough programs for the sums = 4 per SM
_INT32_MAX = 2**31 - 1
# se_excite holds the whole hidden vector (S values) in registers; its weight tiles have at most
# _EXCITE_TILE elements, so BLOCK_C shrinks as S grows (and to C's power of two when C is
# smaller). Partial sums are read in tiles of BLOCK_R rows x BLOCK_C channels: at most
# _PARTIALS_TILE elements and _PARTIALS_ROWS rows; BLOCK_R = 1 for [N, C] sums.
# (64 rows spilled on sm_90 at S = 512, next to its [512, 16] weight tile.)
_EXCITE_TILE = 4096
_PARTIALS_TILE, _PARTIALS_ROWS = 2048, 32
MAX_SQUEEZE = 512


@triton.jit
def _chunk_offsets(t, cols_blocks, COLS, s_row, s_col, BLOCK_P: tl.constexpr):
    """Chunk t of an image walked as rows of COLS pixels in BLOCK_P chunks: int32 pixel offsets and mask."""
    row = t // cols_blocks
    col = (t % cols_blocks) * BLOCK_P + tl.arange(0, BLOCK_P)
    return row * s_row + col * s_col, col < COLS


@triton.jit
def _channel_sums_kernel(x_ptr, out_ptr, C, COLS, cols_blocks, chunks, per_prog, sx_n, sx_c, sx_row, sx_col,
                         so_n, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # Program (n, piece, channel block) adds chunks [piece * per_prog, + per_prog) of image n into
    # out[n, piece, c] (fp32 [N, pieces, C], channel stride 1): one slot, written once.
    pid = tl.program_id(0)
    num_cb = tl.cdiv(C, BLOCK_C)
    pieces = tl.cdiv(chunks, per_prog)
    cb = pid % num_cb
    piece = (pid // num_cb) % pieces
    n = (pid // num_cb) // pieces
    c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    x_img = x_ptr + n.to(tl.int64) * sx_n
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for t in range(piece * per_prog, tl.minimum(chunks, (piece + 1) * per_prog)):
        off, p_mask = _chunk_offsets(t, cols_blocks, COLS, sx_row, sx_col, BLOCK_P)
        acc += tl.load(x_img + off[:, None] + c[None, :] * sx_c, mask=p_mask[:, None] & c_mask[None, :],
                       other=0.0).to(tl.float32)
    tl.store(out_ptr + n.to(tl.int64) * so_n + piece * C + c, tl.sum(acc, axis=0), mask=c_mask)


@triton.jit
def _se_excite_kernel(sums_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, pw_ptr, inv_hw, C, S, P, C_OUT,
                      ss_n, ss_p, ss_c, sw1_s, sw1_c, sb1, sw2_c, sw2_s, sb2, spw_o, spw_c, so_n, so_o,
                      ACT: tl.constexpr, GATE: tl.constexpr, PROJECT: tl.constexpr, BLOCK_S: tl.constexpr,
                      BLOCK_C: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_O: tl.constexpr):
    # Program (n, output block): fc1 over channel blocks into a hidden vector held in registers, then
    # fc2 + gate per channel block. sums is [N, P, C]: the channel sums are the sum over its P rows
    # (partial sums per pixel block), added in a fixed order: deterministic.
    # PROJECT = False: out[n, c] = the fp32 scale (one output block). PROJECT = True: out is the
    # per-image project weight W'[n, o, c] = pw[o, c] * scale[n, c] in pw's dtype, rows o of this
    # program's block of BLOCK_O (every program recomputes the small MLP rather than share it).
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
    o = tl.program_id(1) * BLOCK_O + tl.arange(0, BLOCK_O)
    o_mask = o < C_OUT
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_mask = c < C
        # Padded s columns carry weight 0, so act(0 + 0) in the padded hidden entries is harmless.
        w2 = tl.load(w2_ptr + c[:, None] * sw2_c + s[None, :] * sw2_s,
                     mask=c_mask[:, None] & s_mask[None, :], other=0.0).to(tl.float32)
        z = tl.sum(w2 * hidden[None, :], axis=1) + tl.load(b2_ptr + c * sb2, mask=c_mask, other=0.0).to(tl.float32)
        scale = activation(z, GATE)
        if PROJECT:
            m = o_mask[:, None] & c_mask[None, :]
            pw = tl.load(pw_ptr + o[:, None] * spw_o + c[None, :] * spw_c, mask=m, other=0.0).to(tl.float32)
            tl.store(out_ptr + n * so_n + o[:, None] * so_o + c[None, :], (pw * scale[None, :]).to(
                out_ptr.dtype.element_ty), mask=m)
        else:
            tl.store(out_ptr + n * so_n + c, scale, mask=c_mask)


@triton.jit
def _se_scale_kernel(x_ptr, scale_ptr, out_ptr, C, COLS, cols_blocks, chunks, sx_n, sx_c, sx_row, sx_col,
                     ss_n, ss_c, so_n, so_c, so_row, so_col, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # Program (n, chunk, channel block): one chunk of BLOCK_P pixels of image n.
    pid = tl.program_id(0)
    num_cb = tl.cdiv(C, BLOCK_C)
    cb = pid % num_cb
    t = (pid // num_cb) % chunks
    n = ((pid // num_cb) // chunks).to(tl.int64)
    c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    x_off, p_mask = _chunk_offsets(t, cols_blocks, COLS, sx_row, sx_col, BLOCK_P)
    o_off, _ = _chunk_offsets(t, cols_blocks, COLS, so_row, so_col, BLOCK_P)
    mask = p_mask[:, None] & c_mask[None, :]
    x = tl.load(x_ptr + n * sx_n + x_off[:, None] + c[None, :] * sx_c, mask=mask, other=0.0)
    s = tl.load(scale_ptr + n * ss_n + c * ss_c, mask=c_mask, other=0.0)
    y = (x.to(tl.float32) * s[None, :]).to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + n * so_n + o_off[:, None] + c[None, :] * so_c, y, mask=mask)


def _walk(t: torch.Tensor):
    """(rows, cols, row stride, col stride) of t's pixels: one row when (h, w) flatten to one stride."""
    _, _, h, w = t.shape
    if h == 1 or t.stride(2) == w * t.stride(3):
        return 1, h * w, 0, t.stride(3)
    return h, w, t.stride(2), t.stride(3)


def _check_extent(t: torch.Tensor, name: str) -> None:
    if sum((size - 1) * abs(st) for size, st in zip(t.shape[1:], t.stride()[1:])) > _INT32_MAX:
        raise ValueError(f"{name}: one image spans more than 2**31 elements; the Triton SE kernels index "
                         "images with int32 (use another backend)")


@functools.lru_cache(maxsize=None)
def _sums_grid(n: int, c: int, chunks: int):
    """Chunks per program and pieces: enough programs for 4 per SM, at least 2 chunks each."""
    programs = n * triton.cdiv(c, _BLOCK_C)
    pieces = max(1, min(triton.cdiv(4 * _SMS, programs), chunks // 2))
    per_prog = triton.cdiv(chunks, pieces)
    return per_prog, triton.cdiv(chunks, per_prog)


def channel_sums_partials(x: torch.Tensor) -> torch.Tensor:
    """fp32 [N, P, C] partial channel sums of x (channel stride 1; their sum over dim 1 is the [N, C] sums)."""
    n, c, h, w = x.shape
    _check_extent(x, "x")
    rows, cols, s_row, s_col = _walk(x)
    cols_blocks = triton.cdiv(cols, _BLOCK_P)
    chunks = rows * cols_blocks
    per_prog, pieces = _sums_grid(n, c, chunks)
    out = torch.empty((n, pieces, c), dtype=torch.float32, device=x.device)
    if out.numel():
        _channel_sums_kernel[(n * pieces * triton.cdiv(c, _BLOCK_C),)](
            x, out, c, cols, cols_blocks, chunks, per_prog, x.stride(0), x.stride(1), s_row, s_col, out.stride(0),
            BLOCK_P=_BLOCK_P, BLOCK_C=_BLOCK_C)
    return out


def channel_sums(x: torch.Tensor) -> torch.Tensor:
    """Launcher of effkernels::channel_sums: fp32 [N, C] spatial sums: one launch writing partial sums, and
    a torch sum over them when the pixels were split (a view when they were not)."""
    n, c, h, w = x.shape
    if n * c == 0:
        return torch.empty((n, c), dtype=torch.float32, device=x.device)
    if h * w == 0:
        return torch.zeros((n, c), dtype=torch.float32, device=x.device)
    partials = channel_sums_partials(x)
    return partials[:, 0] if partials.shape[1] == 1 else partials.sum(1)


@functools.lru_cache(maxsize=None)
def _excite_blocks(s: int, c: int, p: int = 1, c_out: int = 0):
    """(BLOCK_S, BLOCK_C, BLOCK_R, BLOCK_O) for S squeeze channels, C channels, P rows of partial sums and
    C_OUT project rows (0: the kernel writes the scale)."""
    block_s = max(16, triton.next_power_of_2(s))
    block_c = max(16, min(_EXCITE_TILE // block_s, triton.next_power_of_2(c)))
    block_r = 1 if p == 1 else min(_PARTIALS_ROWS, _PARTIALS_TILE // block_c)
    block_o = 1 if not c_out else max(1, min(_EXCITE_TILE // block_c, triton.next_power_of_2(c_out)))
    return block_s, block_c, block_r, block_o


def _excite(sums, inv_hw, w1, b1, w2, b2, act, gate, out, project_w):
    if sums.dim() == 2:
        sums = sums.unsqueeze(1)  # a view: [N, 1, C]
    n, p, c = sums.shape
    c_out = 0 if project_w is None else project_w.shape[0]
    block_s, block_c, block_r, block_o = _excite_blocks(w1.shape[0], c, p, c_out)
    pw = w1 if project_w is None else project_w  # unused without PROJECT
    grid = (n, triton.cdiv(c_out, block_o) if c_out else 1)
    _se_excite_kernel[grid](sums, w1, b1, w2, b2, out, pw, inv_hw, c, w1.shape[0], p, c_out, *sums.stride(),
                            *w1.stride(), b1.stride(0), *w2.stride(), b2.stride(0), pw.stride(0), pw.stride(1),
                            out.stride(0), out.stride(1) if project_w is not None else 0,
                            ACT=act, GATE=gate, PROJECT=project_w is not None, BLOCK_S=block_s, BLOCK_C=block_c,
                            BLOCK_R=block_r, BLOCK_O=block_o, num_warps=4)
    return out


def se_excite(sums, inv_hw: float, w1, b1, w2, b2, activation: int, gate: int) -> torch.Tensor:
    """Launcher of effkernels::se_excite: gate(w2 @ act(w1 @ (sums * inv_hw) + b1) + b2), fp32 [N, C].

    sums: fp32 [N, C], or [N, P, C] partial sums (any strides) whose sum over dim 1 are the channel
    sums, as the depthwise and channel-sums kernels leave them. One launch.
    """
    n, c = sums.shape[0], sums.shape[-1]
    out = torch.empty((n, c), dtype=torch.float32, device=sums.device)
    return _excite(sums, inv_hw, w1, b1, w2, b2, activation, gate, out, None) if n else out


def se_project_weights(sums, inv_hw: float, w1, b1, w2, b2, activation: int, gate: int, project_w):
    """The SE scale folded into per-image 1x1 weights: W'[n] = project_w * scale[n] (scale over its input
    channels), [N, C_out, C] contiguous in project_w's dtype, for a batched library GEMM. One launch."""
    n, c = sums.shape[0], sums.shape[-1]
    out = torch.empty((n, project_w.shape[0], c), dtype=project_w.dtype, device=sums.device)
    return _excite(sums, inv_hw, w1, b1, w2, b2, activation, gate, out, project_w) if out.numel() else out


def se_scale(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Launcher of effkernels::se_scale: x * scale[n, c] in x's dtype and memory format."""
    n, c, h, w = x.shape
    out = empty_like_layout(x, x.shape)
    if out.numel() == 0:
        return out
    _check_extent(x, "x")
    rows, cols, s_row, s_col = _walk(x)
    o_row, o_col = (0, out.stride(3)) if rows == 1 else (out.stride(2), out.stride(3))
    cols_blocks = triton.cdiv(cols, _BLOCK_P)
    chunks = rows * cols_blocks
    _se_scale_kernel[(n * chunks * triton.cdiv(c, _BLOCK_C),)](
        x, scale, out, c, cols, cols_blocks, chunks, x.stride(0), x.stride(1), s_row, s_col, *scale.stride(),
        out.stride(0), out.stride(1), o_row, o_col, BLOCK_P=_BLOCK_P, BLOCK_C=_BLOCK_C)
    return out


def squeeze_excite(x, w1, b1, w2, b2, activation: int, gate: int) -> torch.Tensor:
    """x * gate(w2 @ act(w1 @ mean_hw(x) + b1) + b2): partial sums, excite (reducing them), scale; three
    launches (the schema effkernels_triton::squeeze_excite; ops/squeeze_excite.py checks the arguments)."""
    n, c, h, w = x.shape
    if x.numel() == 0:
        return empty_like_layout(x, x.shape)
    scale = se_excite(channel_sums_partials(x), 1.0 / (h * w), w1, b1, w2, b2, activation, gate)
    return se_scale(x, scale)


def aot_variants():
    """(kernel, signature, constexprs) per kernel x dtype (x's dtype; the SE weights' for se_excite) for
    effkernels.triton._aot: the sums and scale kernels on channels_last and NCHW tensors (channel or pixel
    stride 1 specialized; a flattened image has row stride 0), the excite MLP on its extreme shapes."""
    out = []
    for dt in TRITON_DTYPES.values():
        for layout, unit in (("nhwc", dict(sx_c=1)), ("nchw", dict(sx_col=1))):
            sums = dict(x_ptr=f"*{dt}:16", out_ptr="*fp32:16", C="i32:16", COLS="i32", cols_blocks="i32",
                        chunks="i32", per_prog="i32", sx_n="i32:16", sx_c="i32:16", sx_row="i32:16",
                        sx_col="i32:16", so_n="i32:16", BLOCK_P="constexpr", BLOCK_C="constexpr")
            out.append((_channel_sums_kernel, dict(sums, **{k: "constexpr" for k in unit}),
                        dict(unit, BLOCK_P=_BLOCK_P, BLOCK_C=_BLOCK_C, num_warps=4, num_stages=1)))
            o_unit = dict(so_c=1) if layout == "nhwc" else dict(so_col=1)
            scale = dict(x_ptr=f"*{dt}:16", scale_ptr="*fp32:16", out_ptr=f"*{dt}:16", C="i32:16", COLS="i32",
                         cols_blocks="i32", chunks="i32", sx_n="i32:16", sx_c="i32:16", sx_row="i32:16",
                         sx_col="i32:16", ss_n="i32:16", ss_c="constexpr", so_n="i32:16", so_c="i32:16",
                         so_row="i32:16", so_col="i32:16", BLOCK_P="constexpr", BLOCK_C="constexpr")
            consts = dict(unit, **o_unit, ss_c=1, BLOCK_P=_BLOCK_P, BLOCK_C=_BLOCK_C)
            out.append((_se_scale_kernel, dict(scale, **{k: "constexpr" for k in consts}),
                        dict(consts, num_warps=4, num_stages=1)))
        # The excite MLP's tile shape depends on S (the smallest and the largest S it accepts) and
        # C (wide, and 32: the narrowest EfficientNet block), BLOCK_R on whether the sums come in
        # one row ([N, C]: P = 1, a constexpr as the JIT specializes it) or in pixel-block partials,
        # BLOCK_O on the project rows (PROJECT: 24 and 1280 outputs). Each (activation, gate) pair
        # the op accepts once, on the first shape.
        acts = [(3, 5)] * 8 + [(1, 5), (3, 6), (1, 6)]
        shapes = ((16, 1024, 1, 0), (16, 1024, 2, 0), (MAX_SQUEEZE, 1024, 1, 0), (MAX_SQUEEZE, 1024, 2, 0),
                  (16, 32, 1, 0), (16, 32, 2, 0), (4, 96, 25, 24), (MAX_SQUEEZE, 1024, 2, 1280), (16, 1024, 1, 0),
                  (16, 1024, 1, 0), (16, 1024, 1, 0))
        for (s, c, p, c_out), (act, gate) in zip(shapes, acts):
            block_s, block_c, block_r, block_o = _excite_blocks(s, c, p, c_out)
            rows_value = dict(P=1) if p == 1 else {}
            sig = dict(sums_ptr="*fp32:16", w1_ptr=f"*{dt}:16", b1_ptr=f"*{dt}:16", w2_ptr=f"*{dt}:16",
                       b2_ptr=f"*{dt}:16", out_ptr=f"*{dt}:16" if c_out else "*fp32:16", pw_ptr=f"*{dt}:16",
                       inv_hw="fp32", C="i32:16", S="i32", P="constexpr" if p == 1 else "i32", C_OUT="i32",
                       ss_n="i32:16", ss_p="i32:16", ss_c="constexpr", sw1_s="i32:16", sw1_c="constexpr",
                       sb1="constexpr", sw2_c="i32", sw2_s="constexpr", sb2="constexpr", spw_o="i32:16",
                       spw_c="constexpr", so_n="i32:16", so_o="i32:16", ACT="constexpr", GATE="constexpr",
                       PROJECT="constexpr", BLOCK_S="constexpr", BLOCK_C="constexpr", BLOCK_R="constexpr",
                       BLOCK_O="constexpr")
            out.append((_se_excite_kernel, sig,
                        dict(ss_c=1, sw1_c=1, sb1=1, sw2_s=1, sb2=1, spw_c=1, ACT=act, GATE=gate, PROJECT=c_out > 0,
                             BLOCK_S=block_s, BLOCK_C=block_c, BLOCK_R=block_r, BLOCK_O=block_o, **rows_value,
                             num_warps=4, num_stages=3)))
    return out


def hot_loop(kernel, consts):
    """For tools/kernel_report: channel_sums' chunk loop, (input elements one thread adds per iteration, None)."""
    if kernel is _channel_sums_kernel:
        return consts["BLOCK_P"] * consts["BLOCK_C"] / (32 * consts["num_warps"]), None
    return None
