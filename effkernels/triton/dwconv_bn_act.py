"""Fused depthwise k x k convolution + folded BatchNorm + activation (+ SE sums), Triton.

    out[n, c, oh, ow] = act(bias[c] + sum_{kh, kw} weight[c, 0, kh, kw] * h[n, c, ih, iw])
    ih = oh * stride - pad_top + kh,  iw = ow * stride - pad_left + kw   (outside the input: 0)
    h = x, or with a prologue h = pre_act(x + pre_bias[c]): x is then a 1x1 GEMM's pre-activation
        (the MBConv expand run by a library GEMM, ops/mbconv.py) and the kernel applies its bias
        and activation as it loads each element

One pass over the input: every output element is written once, in x's dtype and memory
format; BN is already folded into (weight, bias); products accumulate in fp32. With
`se_sums` the epilogue also writes the fp32 column sums of its tile's activated values
(before rounding to the output dtype) into partials[n, pb, c], the squeeze of a following
squeeze-excitation, in pieces (see "SE sums" below).

Two kernels:
- `_dwconv_nhwc_kernel`, the fast path: channel stride 1 (channels_last, dense or not) and every
  per-image offset below 2**31 (int32 index math; only the image base is int64). A program owns
  image n, a strip of BLOCK_H output rows, BLOCK_W output columns and BLOCK_C channels, and walks
  down its strip: the tile is [BLOCK_W, BLOCK_C] (channels innermost, vector accesses), so no
  per-pixel div/mod. Each input row is loaded once per program as K column-shifted tiles (kw =
  0..K-1), converted (and put through the prologue) once, and added into the ceil(K / stride)
  output rows still open, which rotate as the walk moves down: the vertical reuse happens in
  registers. Per iteration a thread has stride x K tile loads in flight (more with num_stages > 1:
  a cp.async pipeline) and finishes one output row of its tile. The K x K weight vectors stay in
  registers for the whole walk (a thread holds CPT channels of each; with `tap_major(weight)`,
  [k, k, C] storage, they are vector loads, once per program).
  Prologue cost: an input element is activated once per tap column that reads it, about k /
  stride times (k = 3: 3 at stride 1, 1.5 at stride 2), plus the k - stride rows above each strip
  that the strip re-reads (BLOCK_H = 8, k3 s1: +25%). Per-tap loads would activate it k^2 / stride^2
  times (9 / 2.25); once per element needs a sliding window in shared memory (the CUDA kernel's
  design), which Triton cannot address.
- `_dwconv_strided_kernel`, everything else (NCHW and any view; int64 offsets): tile
  [BLOCK_C, BLOCK_P] with pixels innermost (flattened oh * OW + ow), so a warp reads consecutive
  (stride 1) or every-other (stride 2) elements of a row; one row of K taps per loop iteration.
  No prologue (the library-GEMM expand path is channels_last only).

The MBConv library-GEMM path (ops/mbconv.py) also has the NHWC kernel initialise the project
GEMM's output: Y_INIT writes y[n, oh, ow, :] = y_bias (+ residual[n, :, oh, ow]), which the
library GEMM then accumulates into with beta = 1 (the GEMM has no bias epilogue of its own).
The program of channel block cb writes y channels cb * BLOCK_C, + num_cb * BLOCK_C, ...
(`init_project_output`, which the fused expand + depthwise kernel of triton/mbconv_fused.py shares).

SE sums: the program of pixel block pb stores its column sums into partials[n, pb, c] of an
uninitialised fp32 [N, P_blocks, C] buffer, P_blocks = `pixel_blocks(config, out_h, out_w)`:
every slot is written exactly once, so no zero-fill kernel and no atomics (deterministic, too).
Whoever needs [N, C] sums reduces over P_blocks: inside an MBConv block the SE excite kernel does
it while it takes the mean (triton/squeeze_excite.py); the [N, C] launcher `dwconv_bn_act` sums
them with torch (a view, no kernel, when P_blocks is 1). P_blocks depends on the tile, which the
launcher picks before it allocates (`NHWC`/`STRIDED`: the tuned table, else a heuristic;
triton/_common.py).

Limits: k odd, 1 <= k <= 7; stride 1 or 2; fp32 / fp16 / bf16 (weight and bias in x's dtype).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._common import ACTIVATIONS, conv_geometry, empty_like_layout, is_channels_last
from ._common import (TRITON_DTYPES, KernelConfigs, activation, launch_options, multiples_of, torch_dtype,
                      vector_width)

_FIELDS = ("dtype", "N", "C", "H", "W", "K", "STRIDE")
_CATEGORICAL = ("dtype", "K", "STRIDE")
_INT32_MAX = 2**31 - 1


def _nhwc(w, c, warps, h=8, stages=1):
    # BLOCK_H is a run-time argument (rows per program): one compiled kernel serves every strip height.
    return triton.Config({"BLOCK_H": h, "BLOCK_W": w, "BLOCK_C": c}, num_warps=warps, num_stages=stages)


def _nchw(c, p, w):
    return triton.Config({"BLOCK_C": c, "BLOCK_P": p}, num_warps=w, num_stages=1)


# [BLOCK_W, BLOCK_C] tiles. BLOCK_W 8 or 16 fits EfficientNet's widths (7..112: 56 = 7 x 8, 112 = 7 x 16;
# 7 and 14 waste an eighth); BLOCK_C 16..128 lets C = 96, 144, 240, 480, 672, 1152 ... waste at most an
# eighth of the lanes (`_nhwc_heuristic`). Elements per thread and output row, BLOCK_W * BLOCK_C /
# (32 * num_warps): 8, 4 or 2; the K * K weights, ceil(K / stride) open rows and K loaded tiles per
# thread must fit in 255 registers without spilling, which sets the most a key may use (`_max_elements`).
# num_stages > 1: the walk's loads go through a cp.async pipeline (fewer registers, a few more
# instructions: for the tuner to judge).
NHWC_CONFIGS = [
    _nhwc(16, 64, 4),   # 8 elements per thread
    _nhwc(16, 32, 2),
    _nhwc(16, 16, 1),
    _nhwc(8, 64, 2),
    _nhwc(8, 32, 1),
    _nhwc(8, 128, 4),
    _nhwc(8, 64, 4),    # 4
    _nhwc(16, 32, 4),
    _nhwc(16, 16, 2),
    _nhwc(8, 32, 4),    # 2
    _nhwc(16, 16, 4),
    _nhwc(8, 64, 4, stages=2),
    _nhwc(16, 64, 4, stages=3),
]
# Pixels innermost, 8 elements per thread. (4, 256, 4) spilled 8 bytes on sm_80 in fp16/bf16; (2, 512, 4)
# does the same job without.
NCHW_CONFIGS = [
    _nchw(2, 512, 4),   # large maps (56x56 and up)
    _nchw(8, 128, 4),   # 28x28
    _nchw(16, 64, 4),   # 7x7 .. 14x14 maps
    _nchw(64, 16, 4),   # 4x4 and smaller
]
_SMS = 132  # an H100/H200's SM count: the heuristic's notion of "enough programs"


def _elements(cfg) -> int:
    return cfg.kwargs["BLOCK_W"] * cfg.kwargs["BLOCK_C"] // (32 * cfg.num_warps)


def _channels_per_thread(k: int, dtype: str) -> int:
    """CPT: channels a thread holds of each weight vector, 4 (8 bytes of bf16, 16 of fp32) up to k = 5, then
    fewer. 8 (128-bit bf16 loads) costs 72 weight registers at k = 3 (160 per thread, 19% occupancy,
    against 128 and 25% with 4; kernel_report)."""
    return 4 if k <= 5 else (2 if dtype != "fp32" else 1)


def _max_elements(k: int, dtype: str) -> int:
    """The most elements per thread and row a key may use: more spill registers (kernel_report, sm_90)."""
    if k <= 3:
        return 8
    return 2 if (k == 7 and dtype == "fp32") else 4


def _nhwc_candidates(key):
    """Every tile (key None), or those that fit the key, with strip heights around the heuristic's (the tuner
    times them all)."""
    if key is None:
        return NHWC_CONFIGS
    dtype, k = key[0], key[5]
    fitting = [c for c in NHWC_CONFIGS if _elements(c) <= _max_elements(k, dtype)]
    return fitting + [_nhwc(c.kwargs["BLOCK_W"], c.kwargs["BLOCK_C"], c.num_warps, h, c.num_stages)
                      for c in fitting for h in (2, 4, 7, 14, 16)]


def _waste(size, block):
    return -(-size // block) * block - size


def _nhwc_heuristic(key):
    """An estimate until the GPU tables exist: the tile that wastes fewest lanes with as many elements per
    thread as the key allows, then rows per program lowered until there are 2 programs per SM."""
    dtype, n, c, h, w, k, stride = key
    oh, ow = -(-h // stride), -(-w // stride)
    bw = 8 if _waste(ow, 8) < _waste(ow, 16) else 16
    tiles = [cfg for cfg in NHWC_CONFIGS if cfg.kwargs["BLOCK_W"] == bw and cfg.num_stages == 1
             and _elements(cfg) <= _max_elements(k, dtype)]
    tiles.sort(key=lambda cfg: (-_elements(cfg), -cfg.kwargs["BLOCK_C"]))  # most elements, widest block first
    fits = [t for t in tiles if _waste(c, t.kwargs["BLOCK_C"]) * 8 <= c]
    tile = fits[0] if fits else min(tiles, key=lambda t: (_waste(c, t.kwargs["BLOCK_C"]), -_elements(t)))
    bh = 7 if oh % 7 == 0 and oh % 8 else 8
    while bh > 1 and n * -(-oh // bh) * -(-ow // bw) * -(-c // tile.kwargs["BLOCK_C"]) < 2 * _SMS:
        bh = (bh + 1) // 2
    return _nhwc(bw, tile.kwargs["BLOCK_C"], tile.num_warps, bh)


def _nchw_heuristic(key):
    _, n, c, h, w, k, stride = key
    pixels = -(-h // stride) * -(-w // stride)
    for cfg, limit in zip(NCHW_CONFIGS, (56 * 56, 28 * 28, 7 * 7)):
        if pixels >= limit:
            return cfg
    return NCHW_CONFIGS[3]


# The interpreter runs one big tile: it costs per program and per loop iteration, not per element.
NHWC = KernelConfigs("dwconv_nhwc", _FIELDS, _CATEGORICAL, _nhwc_candidates, _nhwc_heuristic,
                     interpreter=_nhwc(32, 64, 4, h=16))
STRIDED = KernelConfigs("dwconv_strided", _FIELDS, _CATEGORICAL, lambda key: NCHW_CONFIGS, _nchw_heuristic,
                        interpreter=_nchw(64, 128, 4))


def pixel_blocks(config: triton.Config, out_h: int, out_w: int) -> int:
    """Rows of the SE partial sums ([N, P_blocks, C]) a launch with `config` writes."""
    cfg = config.kwargs
    if "BLOCK_P" in cfg:
        return triton.cdiv(out_h * out_w, cfg["BLOCK_P"])
    return triton.cdiv(out_h, cfg["BLOCK_H"]) * triton.cdiv(out_w, cfg["BLOCK_W"])


@triton.jit
def _taps(w_c, sw_h, sw_w, c_mask, K: tl.constexpr):
    """The K * K weight vectors of a channel block, fp32, as a tuple indexed kh * K + kw."""
    taps = ()
    for t in tl.static_range(K * K):
        taps = taps + (tl.load(w_c + (t // K) * sw_h + (t % K) * sw_w, mask=c_mask, other=0.0).to(tl.float32),)
    return taps


@triton.jit
def _input_row(x_row, row_ok, offs, oks, pre_b, PRE_ACT: tl.constexpr, K: tl.constexpr, FAST: tl.constexpr):
    """One input row as its K column-shifted [BLOCK_W, BLOCK_C] tiles (fp32, zero outside the input),
    through the prologue act(v + pre_b) when PRE_ACT >= 0."""
    tiles = ()
    for kw in tl.static_range(K):
        ok = oks[kw] & row_ok
        v = tl.load(x_row + offs[kw], mask=ok, other=0.0).to(tl.float32)
        if PRE_ACT >= 0:
            v = tl.where(ok, activation(v + pre_b[None, :], PRE_ACT, FAST), 0.0)  # padding stays 0
        tiles = tiles + (v,)
    return tiles


@triton.jit
def _add_row(accs, tiles, taps, R: tl.constexpr, K: tl.constexpr, STRIDE: tl.constexpr):
    """Add input row R (counted from the first row of the open output row accs[0]) into the open rows:
    accs[d] takes it with kh = R - d * STRIDE. (Constexpr arithmetic stays inline: a local assigned
    an int would become a tensor.)"""
    out = ()
    for d in tl.static_range(len(accs)):
        acc = accs[d]
        if R - d * STRIDE >= 0 and R - d * STRIDE < K:
            for kw in tl.static_range(K):
                acc += tiles[kw] * taps[(R - d * STRIDE) * K + kw][None, :]
        out = out + (acc,)
    return out


@triton.jit
def _load_add_row(accs, x_img, ih0, H, sx_h, offs, oks, pre_b, taps, R: tl.constexpr, PRE_ACT: tl.constexpr,
                  K: tl.constexpr, STRIDE: tl.constexpr, FAST: tl.constexpr):
    """Load input row ih0 + R (see _input_row) and add it into the open output rows (_add_row)."""
    ih = ih0 + R
    tiles = _input_row(x_img + ih * sx_h, (ih >= 0) & (ih < H), offs, oks, pre_b, PRE_ACT, K, FAST)
    return _add_row(accs, tiles, taps, R, K, STRIDE)


@triton.jit
def init_project_output(y_img, r_img, y_pix, r_pix, pix_mask, y_b_ptr, lanes, cb, num_cb, C_Y, Y_INIT: tl.constexpr,
                        BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr):
    """Y_INIT (module docstring) for BLOCK_PIX pixels of one image: y = y_bias (+ residual), in channel blocks
    cb, cb + num_cb, ... of C_Y, so that the num_cb programs of a pixel tile share the C_Y channels. y_pix /
    r_pix: the pixels' offsets from y_img / r_img (channel stride 1), pix_mask: those that exist; lanes:
    tl.arange(0, BLOCK_C), with whatever contiguity hint the caller's layout wants."""
    for co0 in range(cb * BLOCK_C, C_Y, num_cb * BLOCK_C):
        co = co0 + lanes
        co_mask = co < C_Y
        m = pix_mask[:, None] & co_mask[None, :]
        v = tl.zeros((BLOCK_PIX, BLOCK_C), dtype=tl.float32)
        v += tl.load(y_b_ptr + co, mask=co_mask, other=0.0).to(tl.float32)[None, :]
        if Y_INIT == 2:
            v += tl.load(r_img + r_pix[:, None] + co[None, :], mask=m, other=0.0).to(tl.float32)
        tl.store(y_img + y_pix[:, None] + co[None, :], v.to(y_img.dtype.element_ty), mask=m)


@triton.jit
def _dwconv_nhwc_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, sums_ptr, pre_b_ptr, y_ptr, y_b_ptr, res_ptr,
    C, H, W, OH, OW, pad_top, pad_left, BLOCK_H, C_Y,
    sx_n, sx_h, sx_w,          # x's channel stride is 1 (the launcher picks this kernel for that)
    sw_c, sw_h, sw_w, sb_c,
    so_n, so_h, so_w,          # out is allocated channels_last: channel stride 1
    ss_n,                      # partial sums [N, >= P_blocks, C]: image stride (pixel block C, channel 1)
    sy_n, sy_h, sy_w, sr_n, sr_h, sr_w,   # Y_INIT's y and residual (channel stride 1)
    K: tl.constexpr, STRIDE: tl.constexpr, ACT: tl.constexpr, SE_SUMS: tl.constexpr,
    PRE_ACT: tl.constexpr, Y_INIT: tl.constexpr, VEC: tl.constexpr, W_VEC: tl.constexpr, CPT: tl.constexpr,
    BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr, STAGES: tl.constexpr,
):
    # VEC (16 bytes of elements, or 1) divides C and the x/out strides, W_VEC the tap strides of
    # tap-major weights (the launcher checks): vector accesses also when they are not multiples of 16.
    sw_h, sw_w = multiples_of((sw_h, sw_w), W_VEC)
    C, sx_n, sx_h, sx_w, so_n, so_h, so_w = multiples_of((C, sx_n, sx_h, sx_w, so_n, so_h, so_w), VEC)
    FAST: tl.constexpr = out_ptr.dtype.element_ty != tl.float32  # fp16/bf16 outputs: the one-MUFU SiLU
    pid = tl.program_id(0)
    num_cb = tl.cdiv(C, BLOCK_C)
    num_wb = tl.cdiv(OW, BLOCK_W)
    num_hb = tl.cdiv(OH, BLOCK_H)
    cb = pid % num_cb  # channel blocks vary fastest: neighbouring programs read neighbouring bytes
    t = pid // num_cb
    wb = t % num_wb
    t = t // num_wb
    hb = t % num_hb
    n = t // num_hb

    # CPT channels per thread (a contiguity hint below the 16-byte vector): the K * K weight vectors a
    # thread keeps in registers hold K * K * CPT values (`_channels_per_thread`).
    c = cb * BLOCK_C + tl.max_contiguous(tl.arange(0, BLOCK_C), CPT)
    c_mask = c < C
    ow = wb * BLOCK_W + tl.arange(0, BLOCK_W)
    o_mask = (ow < OW)[:, None] & c_mask[None, :]
    oh0 = hb * BLOCK_H
    rows = tl.minimum(BLOCK_H, OH - oh0)
    ih0 = oh0 * STRIDE - pad_top  # input row of the strip's first tap row
    if Y_INIT > 0:  # first, so that none of its registers is live during the walk
        y_img = y_ptr + n.to(tl.int64) * sy_n
        r_img = res_ptr + n.to(tl.int64) * sr_n
        for j in range(rows):
            oh = oh0 + j
            init_project_output(y_img + oh * sy_h, r_img + oh * sr_h, ow * sy_w, ow * sr_w, ow < OW, y_b_ptr,
                                tl.max_contiguous(tl.arange(0, BLOCK_C), CPT), cb, num_cb, C_Y, Y_INIT,
                                BLOCK_W, BLOCK_C)  # (channels in the walk's layout)
    # Per tap column: int32 offsets and masks of the shifted [BLOCK_W, BLOCK_C] tile, loop invariants.
    offs = ()
    oks = ()
    for kw in tl.static_range(K):
        iw = ow * STRIDE - pad_left + kw
        offs = offs + ((iw * sx_w)[:, None] + c[None, :],)
        oks = oks + (((iw >= 0) & (iw < W))[:, None] & c_mask[None, :],)
    x_img = x_ptr + n.to(tl.int64) * sx_n
    taps = _taps(w_ptr + c * sw_c, sw_h, sw_w, c_mask, K)  # in registers through the walk
    bias = tl.load(b_ptr + c * sb_c, mask=c_mask, other=0.0).to(tl.float32)
    pre_b = bias  # a placeholder without a prologue (unused)
    if PRE_ACT >= 0:  # pre_b_ptr, y_b_ptr: contiguous (the launcher checks)
        pre_b = tl.load(pre_b_ptr + c, mask=c_mask, other=0.0).to(tl.float32)

    # ceil(K / STRIDE) output rows are open at a time, accs[0] the next to finish; they start at the bias.
    start = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32) + bias[None, :]
    accs = ()
    for d in tl.static_range((K + STRIDE - 1) // STRIDE):
        accs = accs + (start,)
    for r in tl.static_range(K - STRIDE):  # rows above the first output row's last STRIDE rows (none if K < 2)
        accs = _load_add_row(accs, x_img, ih0, H, sx_h, offs, oks, pre_b, taps, r, PRE_ACT, K, STRIDE, FAST)

    o_img = out_ptr + n.to(tl.int64) * so_n
    o_offs = (ow * so_w)[:, None] + c[None, :]
    se = tl.zeros((BLOCK_W, BLOCK_C), dtype=tl.float32)
    for j in tl.range(0, rows, num_stages=STAGES):  # STAGES > 1: the next rows' loads prefetched by cp.async
        for q in tl.static_range(STRIDE):  # the STRIDE new input rows of output row j (K = 1: one)
            if K - STRIDE + q >= 0:
                accs = _load_add_row(accs, x_img, ih0 + j * STRIDE, H, sx_h, offs, oks, pre_b, taps,
                                     K - STRIDE + q, PRE_ACT, K, STRIDE, FAST)
        y = activation(accs[0], ACT, FAST)
        tl.store(o_img + (oh0 + j) * so_h + o_offs, y.to(out_ptr.dtype.element_ty), mask=o_mask)
        if SE_SUMS:
            se += y  # lanes outside the map are finite (act(bias)) and masked once, below
        rotated = ()
        for d in tl.static_range(1, len(accs)):
            rotated = rotated + (accs[d],)
        accs = rotated + (start,)
    if SE_SUMS:
        pb = hb * num_wb + wb
        tl.store(sums_ptr + n.to(tl.int64) * ss_n + pb * C + c, tl.sum(tl.where(o_mask, se, 0.0), axis=0),
                 mask=c_mask)


@triton.jit
def pixel_tile(pb, OH, OW, pad_top, pad_left, STRIDE: tl.constexpr, BLOCK_P: tl.constexpr):
    """Pixel block pb of a tile of BLOCK_P output pixels (flattened oh * OW + ow, as the strided kernel and
    triton/mbconv_fused.py tile them): (in-map mask, oh, ow, input row and column of each pixel's first tap)."""
    p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    oh = p // OW
    ow = p % OW
    return p < OH * OW, oh, ow, oh * STRIDE - pad_top, ow * STRIDE - pad_left


@triton.jit
def _dwconv_strided_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, sums_ptr,
    C, H, W, OH, OW, pad_top, pad_left,
    sx_n, sx_c, sx_h, sx_w,
    sw_c, sw_h, sw_w, sb_c,
    so_n, so_c, so_h, so_w,
    ss_n,                      # partial sums [N, >= P_blocks, C]: image stride (pixel block C, channel 1)
    K: tl.constexpr, STRIDE: tl.constexpr, ACT: tl.constexpr, SE_SUMS: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):
    pid = tl.program_id(0)
    num_pb = tl.cdiv(OH * OW, BLOCK_P)
    num_cb = tl.cdiv(C, BLOCK_C)
    pb = pid % num_pb  # pixel blocks first: in NCHW they are the contiguous direction
    cb = (pid // num_pb) % num_cb
    n = pid // (num_cb * num_pb)

    c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    p_mask, oh, ow, ih0, iw0 = pixel_tile(pb, OH, OW, pad_top, pad_left, STRIDE, BLOCK_P)
    x_chan = x_ptr + n.to(tl.int64) * sx_n + c.to(tl.int64) * sx_c
    w_c = w_ptr + c.to(tl.int64) * sw_c

    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=tl.float32)
    for kh in range(K):  # a loop, not unrolled: one row of K taps in flight bounds the registers
        ih = ih0 + kh
        h_ok = p_mask & (ih >= 0) & (ih < H)
        row = ih.to(tl.int64) * sx_h
        for kw in tl.static_range(K):
            iw = iw0 + kw
            ok = h_ok & (iw >= 0) & (iw < W)
            pix = row + iw.to(tl.int64) * sx_w
            xv = tl.load(x_chan[:, None] + pix[None, :], mask=c_mask[:, None] & ok[None, :], other=0.0)
            wv = tl.load(w_c + kh * sw_h + kw * sw_w, mask=c_mask, other=0.0)
            acc += xv.to(tl.float32) * wv.to(tl.float32)[:, None]

    bv = tl.load(b_ptr + c.to(tl.int64) * sb_c, mask=c_mask, other=0.0)
    y = activation(acc + bv.to(tl.float32)[:, None], ACT, out_ptr.dtype.element_ty != tl.float32)
    mask = c_mask[:, None] & p_mask[None, :]
    o_chan = n.to(tl.int64) * so_n + c.to(tl.int64) * so_c
    o_pix = oh.to(tl.int64) * so_h + ow.to(tl.int64) * so_w
    tl.store(out_ptr + o_chan[:, None] + o_pix[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)
    if SE_SUMS:
        tl.store(sums_ptr + n.to(tl.int64) * ss_n + pb * C + c, tl.sum(tl.where(mask, y, 0.0), axis=1), mask=c_mask)


def _empty_partials(n, rows, c, device):
    """The uninitialised fp32 [N, rows, C] partial-sums buffer (a function, so tests can poison it)."""
    return torch.empty((n, rows, c), dtype=torch.float32, device=device)


def _int32_extent(t: torch.Tensor) -> bool:
    """Every element offset of one image of t (a 4-d view) fits in int32."""
    return sum((size - 1) * abs(st) for size, st in zip(t.shape[1:], t.stride()[1:])) <= _INT32_MAX


def dense_nhwc_fits(c: int, h: int, w: int, out_h: int, out_w: int) -> bool:
    """Whether the NHWC kernel serves a dense channels_last [N, c, h, w] input and its output (int32)."""
    return max(h * w, out_h * out_w) * c <= _INT32_MAX


def nhwc_kernel_serves(x: torch.Tensor, out_h: int, out_w: int) -> bool:
    """Whether x goes to the NHWC kernel (channel stride 1, int32 per-image offsets; the output is
    channels_last like x, so its extent is out_h * out_w * C)."""
    return is_channels_last(x) and _int32_extent(x) and out_h * out_w * x.shape[1] <= _INT32_MAX


def y_init_args(y_init, out, bias):
    """(y, y_bias, residual, Y_INIT) for a kernel with `init_project_output`, from y_init = (y, y_bias, residual
    or None) (`dwconv_bn_act_partials`), or None: then out and bias stand in, unread."""
    if y_init is None:
        return out, bias, out, 0
    y, y_b, res = y_init
    # The kernel indexes y's and res's channels with stride 1 (with one channel, any stride is that).
    if not (y_b.is_contiguous() and all(t is None or t.shape[1] == 1 or t.stride(1) == 1 for t in (y, res))):
        raise ValueError("y_init: expects channels_last y and residual and a contiguous y_bias")
    if not all(t is None or _int32_extent(t) for t in (y, res)):  # the kernels' per-pixel offsets are int32
        raise ValueError("y_init: y and residual need every per-image element offset below 2**31")
    return (y, y_b, y, 1) if res is None else (y, y_b, res, 2)


def dwconv_bn_act_partials(x, weight, bias, stride, pad_top, pad_left, out_h, out_w, act_code, se_sums,
                           config=None, prologue=None, y_init=None):
    """Launch the fused kernel; arguments as `dwconv_bn_act`. One launch, nothing else on the device.

    Returns (out, partials): partials is an fp32 [N, P_blocks, C] tensor (channel stride 1) whose
    sum over dim 1 is the [N, C] SE sums, every element written by the kernel; None without
    se_sums. P_blocks = pixel_blocks(config that ran, out_h, out_w). `config`: a triton.Config
    to run instead of the picked one (NHWC_CONFIGS / NCHW_CONFIGS; tests and the tuner).
    The MBConv library-GEMM path's extras (NHWC kernel only, see the module docstring):
    prologue = (pre_bias [C] contiguous, activation code): x is the pre-activation;
    y_init = (y [N, C_Y, out_h, out_w] channels_last, y_bias [C_Y] contiguous, residual or None).
    """
    n, c, h, w = x.shape
    k = weight.shape[-1]
    out = empty_like_layout(x, (n, c, out_h, out_w))
    nhwc = nhwc_kernel_serves(x, out_h, out_w)
    if (prologue is not None or y_init is not None) and not nhwc:
        raise ValueError("x: the depthwise prologue / y_init need the NHWC kernel (channels_last x, int32 offsets)")
    if config is None:
        table = NHWC if nhwc else STRIDED
        config = table.pick((TRITON_DTYPES[x.dtype], n, c, h, w, k, stride), x.device)
    launch = launch_options(config)
    blocks = pixel_blocks(config, out_h, out_w)
    partials = _empty_partials(n, blocks, c, x.device) if se_sums else None
    if out.numel() == 0:
        return out, partials  # partials has no elements either (n, c or out_h * out_w is 0)
    grid = (n * blocks * triton.cdiv(c, launch["BLOCK_C"]),)
    # Without se_sums the kernel never touches sums_ptr: an uninitialised 1-element stand-in
    # (torch.empty runs no kernel).
    sums_arg = partials if se_sums else torch.empty(1, dtype=torch.float32, device=x.device)
    if not nhwc:
        _dwconv_strided_kernel[grid](
            x, weight, bias, out, sums_arg, c, h, w, out_h, out_w, pad_top, pad_left, *x.stride(),
            weight.stride(0), weight.stride(2), weight.stride(3), bias.stride(0), *out.stride(), sums_arg.stride(0),
            K=k, STRIDE=stride, ACT=act_code, SE_SUMS=bool(se_sums), **launch)
        return out, partials
    launch["VEC"] = vector_width(x, (c, x.stride(0), x.stride(2), x.stride(3), out.stride(0), out.stride(2),
                                     out.stride(3)))
    launch["W_VEC"] = vector_width(x, weight.stride()[2:]) if weight.stride(0) == 1 else 1
    pre_b, pre_act = prologue if prologue is not None else (bias, -1)  # bias: an unread stand-in
    y, y_b, res, mode = y_init_args(y_init, out, bias)
    if prologue is not None and not pre_b.is_contiguous():
        raise ValueError("prologue: pre_bias must be contiguous")
    _dwconv_nhwc_kernel[grid](
        x, weight, bias, out, sums_arg, pre_b, y, y_b, res,
        c, h, w, out_h, out_w, pad_top, pad_left, launch.pop("BLOCK_H"), y.shape[1],
        x.stride(0), x.stride(2), x.stride(3), weight.stride(0), weight.stride(2), weight.stride(3), bias.stride(0),
        out.stride(0), out.stride(2), out.stride(3), sums_arg.stride(0),
        y.stride(0), y.stride(2), y.stride(3), res.stride(0), res.stride(2), res.stride(3),
        K=k, STRIDE=stride, ACT=act_code, SE_SUMS=bool(se_sums), PRE_ACT=pre_act, Y_INIT=mode,
        CPT=_channels_per_thread(k, TRITON_DTYPES[x.dtype]), STAGES=launch["num_stages"], **launch)
    return out, partials


def dwconv_bn_act(x, weight, bias, stride, pad_top, pad_left, out_h, out_w, act_code, se_sums, config=None):
    """Launch the fused kernel; arguments as the C++ schema (geometry resolved, checked by the op).

    Returns (out, sums): out [N, C, out_h, out_w] in x's dtype and memory format, sums fp32 [N, C]
    (contiguous), or an empty tensor without se_sums (the schema's convention). `config`: as in
    `dwconv_bn_act_partials`. With se_sums the kernel's partial sums are reduced here: a view when there is
    one pixel block, else a torch sum over the blocks (a second kernel; an MBConv block avoids it
    by handing the partials to se_excite, see `dwconv_bn_act_partials`).
    """
    out, partials = dwconv_bn_act_partials(x, weight, bias, stride, pad_top, pad_left, out_h, out_w, act_code,
                                           se_sums, config)
    if partials is None:
        return out, x.new_empty((0,), dtype=torch.float32)
    if partials.shape[1] == 1 and partials[:, 0].is_contiguous():
        return out, partials[:, 0]
    return out, partials.sum(1)


@NHWC.runner
def _nhwc_runner(key, device, channels_last=True):
    """For the tuner: random inputs of `key` as an MBConv block calls the kernel (SiLU, SE sums, padding
    (k - 1) // 2, [C, 1, k, k] weights); returns run(config)."""
    dtype, n, c, h, w, k, stride = key
    like = dict(device=device, dtype=torch_dtype(dtype))
    x = torch.randn(n, c, h, w, **like)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    weight, bias = torch.randn(c, 1, k, k, **like) / k, torch.randn(c, **like)
    geom = conv_geometry(h, w, k, stride, (k - 1) // 2)
    return lambda config: dwconv_bn_act_partials(x, weight, bias, stride, *geom, ACTIVATIONS["silu"], True, config)


@STRIDED.runner
def _strided_runner(key, device):
    return _nhwc_runner(key, device, channels_last=False)


def aot_variants():
    """Every (kernel, signature, constexprs) the launcher can request, for effkernels.triton._aot.

    Arguments are typed as the JIT specializes them: channels_last x with C a multiple of 16 and tap-major
    weights (NHWC kernel), contiguous NCHW x with [C, 1, k, k] weights (strided kernel); strides equal to 1
    become constexprs. Per dtype: every config with k = 3, stride 1, SiLU and SE sums (NHWC in fp32 / fp16: one
    tile per elements-per-thread count and num_stages, the properties that set registers); then, with the first
    config, every other value of each constexpr the launcher sets: k 1/5/7 (NHWC: with the CPT the launcher
    picks for them, and one config of each elements-per-thread count they may use), stride 2, every
    activation, no SE sums; NHWC also every prologue activation (PRE_ACT, -1 = none), Y_INIT 1 and 2,
    [C, 1, k, k] weights (W_VEC = 1), C a multiple of 8 only, and unaligned C (VEC = 1). BLOCK_H (rows per
    program) is a run-time argument.
    """
    from .._common import ACTIVATIONS, CONV_ACTIVATIONS

    out = []
    for dt in TRITON_DTYPES.values():
        vec = 4 if dt == "fp32" else 8
        ptrs = dict(x_ptr=f"*{dt}:16", w_ptr=f"*{dt}:16", b_ptr=f"*{dt}:16", out_ptr=f"*{dt}:16",
                    sums_ptr="*fp32:16", H="i32", W="i32", OH="i32", OW="i32", pad_top="i32", pad_left="i32")
        nhwc = dict(ptrs, pre_b_ptr=f"*{dt}:16", y_ptr=f"*{dt}:16", y_b_ptr=f"*{dt}:16", res_ptr=f"*{dt}:16",
                    BLOCK_H="i32", C_Y="i32:16", C="i32:16", sx_n="i32:16", sx_h="i32:16", sx_w="i32:16", sw_c=1,
                    sw_h="i32:16", sw_w="i32:16", sb_c=1, so_n="i32:16", so_h="i32:16", so_w="i32:16",
                    ss_n="i32:16", sy_n="i32:16", sy_h="i32:16", sy_w="i32:16", sr_n="i32:16", sr_h="i32:16",
                    sr_w="i32:16")
        unaligned = ("C", "sx_n", "sx_h", "sx_w", "sw_h", "sw_w", "so_n", "so_h", "so_w", "ss_n")
        nhwc_variants = [  # (signature, VEC, W_VEC)
            (dict(nhwc, sw_c="i32", sw_h="i32", sw_w=1), vec, 1),        # [C, 1, k, k] weights
            (dict(nhwc, **{a: "i32" for a in unaligned}), vec, vec),     # C = 40, 56: alignment from VEC alone
            (dict(nhwc, **{a: "i32" for a in unaligned}), 1, 1),         # C odd: scalar accesses
        ]
        strided = dict(ptrs, C="i32", sx_n="i32", sx_c="i32", sx_h="i32", sx_w=1, sw_c="i32", sw_h="i32",
                       sw_w=1, sb_c=1, so_n="i32", so_c="i32", so_h="i32", so_w=1, ss_n="i32")
        base = dict(K=3, STRIDE=1, ACT=3, SE_SUMS=True)
        others = ([dict(base, K=k) for k in (1, 5, 7)] + [dict(base, STRIDE=2)] + [dict(base, SE_SUMS=False)]
                  + [dict(base, ACT=ACTIVATIONS[a]) for a in CONV_ACTIVATIONS if a != "silu"])
        nhwc_base = dict(base, PRE_ACT=-1, Y_INIT=0)
        nhwc_others = ([dict(nhwc_base, **o) for o in others]
                       + [dict(nhwc_base, PRE_ACT=ACTIVATIONS[a]) for a in CONV_ACTIVATIONS]
                       + [dict(nhwc_base, PRE_ACT=3, Y_INIT=y) for y in (1, 2)])
        for kernel, args, table, first, rest in ((_dwconv_nhwc_kernel, nhwc, NHWC_CONFIGS, nhwc_base, nhwc_others),
                                                 (_dwconv_strided_kernel, strided, NCHW_CONFIGS, base, others)):
            nhwc_kernel = kernel is _dwconv_nhwc_kernel
            tiles = table
            if nhwc_kernel and dt != "bf16":  # per elements-per-thread count and pipeline depth (CI compile time)
                tiles = list({(_elements(c), c.num_stages): c for c in reversed(table)}.values())
            cases = [(args, cfg, first, vec, vec) for cfg in tiles]
            for spec in rest:
                if nhwc_kernel and spec["K"] > 3:  # one tile per elements-per-thread count the key may use
                    limit = _max_elements(spec["K"], dt)
                    tiles = {_elements(cfg): cfg for cfg in reversed(table) if _elements(cfg) <= limit}
                    cases += [(args, cfg, spec, vec, vec) for cfg in tiles.values()]
                else:
                    cases.append((args, table[0], spec, vec, vec))
            if nhwc_kernel:
                cases += [(a, table[0], first, v, wv) for a, v, wv in nhwc_variants]
            for a, cfg, spec, v, wv in cases:
                consts = {name: val for name, val in a.items() if isinstance(val, int)}
                consts.update({k: val for k, val in cfg.kwargs.items() if k != "BLOCK_H"}, **spec)
                if nhwc_kernel:
                    consts.update(VEC=v, W_VEC=wv, CPT=_channels_per_thread(spec["K"], dt), STAGES=cfg.num_stages)
                sig = dict(a, **{name: "constexpr" for name in consts})
                out.append((kernel, sig, dict(consts, num_warps=cfg.num_warps, num_stages=cfg.num_stages)))
    return out


def hot_loop(kernel, consts):
    """For tools/kernel_report: (outputs one thread finishes per loop iteration, iterations per program).
    NHWC: one output row of the tile per iteration, BLOCK_H = 8 rows assumed; strided: one kh row of taps."""
    threads = 32 * consts["num_warps"]
    if kernel is _dwconv_nhwc_kernel:
        return consts["BLOCK_W"] * consts["BLOCK_C"] / threads, 8
    return consts["BLOCK_P"] * consts["BLOCK_C"] / threads / consts["K"], consts["K"]
