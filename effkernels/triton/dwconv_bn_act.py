"""Fused depthwise k x k convolution + folded BatchNorm + activation (+ SE sums), Triton.

    out[n, c, oh, ow] = act(bias[c] + sum_{kh, kw} weight[c, 0, kh, kw] * x[n, c, ih, iw])
    ih = oh * stride - pad_top + kh,  iw = ow * stride - pad_left + kw   (outside the input: 0)

One pass over the input: every output element is written once, in x's dtype and memory
format; BN is already folded into (weight, bias); products accumulate in fp32. With
`se_sums` the epilogue also writes the fp32 column sums of its tile's activated values
(before rounding to the output dtype) into partials[n, pb, c], the squeeze of a following
squeeze-excitation, in pieces (see "SE sums" below).

Tiles. A program owns one image n, a block of BLOCK_P output pixels (flattened oh * OW + ow,
so 7x7 maps do not waste a 2-d tile) and a block of BLOCK_C channels. It loops over the k rows
of taps and unrolls the k taps of a row (K is a constexpr): one row of loads in flight keeps
registers bounded (fully unrolled, k = 5 spilled 3.5 KB of stack on sm_90 in fp32).
- channels_last (x.stride(1) == 1), the fast path: tile [BLOCK_P, BLOCK_C] with channels
  innermost, so each thread loads and stores runs of 16 bytes (LDG.E.128 / STG.E.128) when C
  and the pixel strides are multiples of 16 bytes' worth of elements: Triton's argument
  specialization sees multiples of 16, the VEC constexpr covers the rest (e.g. C = 40 in fp16);
  otherwise scalar loads.
  Program ids walk the channel blocks of a pixel block first, so neighbouring programs read
  neighbouring bytes of the same NHWC rows.
- any other layout (NCHW and arbitrary views): tile [BLOCK_C, BLOCK_P] with pixels innermost,
  so a warp reads consecutive (stride 1) or every-other (stride 2) elements of a row. The kw
  shift makes those loads unaligned, so they are coalesced scalar loads.
Weights are read with their strides. The default [C, 1, k, k] layout makes each tap a strided
gather of BLOCK_C weights (L1 hits, but one load instruction per channel a thread owns);
`tap_major(weight)` stores the same [C, 1, k, k] tensor as [k, k, C] (channel stride 1) so those
become vector loads too. Convert once, when folding BN, never per call.

SE sums: the program of pixel block pb stores its column sums into partials[n, pb, c] of an
uninitialised fp32 [N, P_blocks, C] buffer, P_blocks = cdiv(OH * OW, BLOCK_P): every slot is
written exactly once, so no zero-fill kernel and no atomics (deterministic, too). Whoever needs
[N, C] sums reduces over P_blocks: inside an MBConv block the SE excite kernel does it while it
takes the mean (triton/squeeze_excite.py, `dwconv_bn_act_partials` here); the [N, C] launcher
`dwconv_bn_act` sums them with torch (a view, no kernel, when P_blocks is 1).
P_blocks depends on the tile, which the launcher picks before it allocates (`NHWC`/`STRIDED`:
the tuned table, else a heuristic; triton/_common.py).

Offsets: the image offset n * stride_n and every index times a stride are int64, so tensors
(and single images) over 2**31 elements address correctly; only OH * OW must stay below 2**31.

Limits: k odd, 1 <= k <= 7; stride 1 or 2; fp32 / fp16 / bf16 (weight and bias in x's dtype).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._common import ACTIVATIONS, conv_geometry, empty_like_layout, is_channels_last
from ._common import TRITON_DTYPES, KernelConfigs, activation, launch_options, torch_dtype

_FIELDS = ("dtype", "N", "C", "H", "W", "K", "STRIDE")
_CATEGORICAL = ("dtype", "K", "STRIDE")


def _nhwc(p, c, w):
    return triton.Config({"BLOCK_P": p, "BLOCK_C": c}, num_warps=w, num_stages=1)


def _nchw(c, p, w):
    return triton.Config({"BLOCK_C": c, "BLOCK_P": p}, num_warps=w, num_stages=1)


# 8 or 16 elements per thread: one or two 128-bit fp16 vectors (two or four fp32) per tap. Keep BLOCK_C <
# 32 * num_warps: at or above it Triton loads the per-tap weight vector one element per thread and converts
# it through shared memory (a barrier per tap in the SASS; `python -m effkernels.tools.kernel_report`).
NHWC_CONFIGS = [
    _nhwc(32, 64, 4),   # the common case
    _nhwc(64, 32, 4),   # narrow layers (C = 32..48)
    _nhwc(16, 128, 8),  # wide layers on small maps
    _nhwc(16, 64, 4),   # small maps, batch 1: more programs to fill the SMs
    _nhwc(16, 32, 2),   # 7x7 maps, batch 1
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


def _nhwc_heuristic(key):
    _, n, c, h, w, k, stride = key
    pixels = -(-h // stride) * -(-w // stride)
    if c <= 48:
        return NHWC_CONFIGS[1]
    if n * triton.cdiv(pixels, 32) * triton.cdiv(c, 64) < 2 * _SMS:  # too few programs for the common tile
        return NHWC_CONFIGS[4] if pixels <= 64 else NHWC_CONFIGS[3]
    return NHWC_CONFIGS[2] if c >= 512 and pixels <= 196 else NHWC_CONFIGS[0]


def _nchw_heuristic(key):
    _, n, c, h, w, k, stride = key
    pixels = -(-h // stride) * -(-w // stride)
    for cfg, limit in zip(NCHW_CONFIGS, (56 * 56, 28 * 28, 7 * 7)):
        if pixels >= limit:
            return cfg
    return NCHW_CONFIGS[3]


# The interpreter runs one big tile: it costs per program, not per element.
NHWC = KernelConfigs("dwconv_nhwc", _FIELDS, _CATEGORICAL, lambda key: NHWC_CONFIGS, _nhwc_heuristic,
                     interpreter=_nhwc(64, 128, 4))
STRIDED = KernelConfigs("dwconv_strided", _FIELDS, _CATEGORICAL, lambda key: NCHW_CONFIGS, _nchw_heuristic,
                        interpreter=_nchw(64, 128, 4))


@triton.jit
def _dwconv_nhwc_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, sums_ptr,
    C, H, W, OH, OW, pad_top, pad_left,
    sx_n, sx_h, sx_w,          # x's channel stride is 1 (the launcher picks this kernel for that)
    sw_c, sw_h, sw_w, sb_c,
    so_n, so_h, so_w,          # out is allocated channels_last: channel stride 1
    ss_n,                      # partial sums [N, >= P_blocks, C]: image stride (pixel block C, channel 1)
    K: tl.constexpr, STRIDE: tl.constexpr, ACT: tl.constexpr, SE_SUMS: tl.constexpr,
    VEC: tl.constexpr, W_VEC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    # VEC (16 bytes of elements, or 1) divides C and the x/out strides, W_VEC the tap strides of
    # tap-major weights; the launcher checks. Rewriting them as multiples of the constexprs lets
    # Triton prove 16-byte alignment, and so emit 128-bit accesses, when they are not multiples
    # of 16 (its own specialization), e.g. C = 40.
    sw_h = sw_h // W_VEC * W_VEC
    sw_w = sw_w // W_VEC * W_VEC
    C = C // VEC * VEC
    sx_n = sx_n // VEC * VEC
    sx_h = sx_h // VEC * VEC
    sx_w = sx_w // VEC * VEC
    so_n = so_n // VEC * VEC
    so_h = so_h // VEC * VEC
    so_w = so_w // VEC * VEC
    pid = tl.program_id(0)
    num_cb = tl.cdiv(C, BLOCK_C)
    num_pb = tl.cdiv(OH * OW, BLOCK_P)
    cb = pid % num_cb
    pb = (pid // num_cb) % num_pb
    n = pid // (num_cb * num_pb)

    c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    c_mask = c < C
    p_mask = p < OH * OW
    oh = p // OW
    ow = p % OW
    ih0 = oh * STRIDE - pad_top
    iw0 = ow * STRIDE - pad_left
    x_img = x_ptr + n.to(tl.int64) * sx_n
    w_c = w_ptr + c.to(tl.int64) * sw_c

    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for kh in range(K):  # a loop, not unrolled: one row of K taps in flight bounds the registers
        ih = ih0 + kh
        h_ok = p_mask & (ih >= 0) & (ih < H)
        row = ih.to(tl.int64) * sx_h
        for kw in tl.static_range(K):
            iw = iw0 + kw
            ok = h_ok & (iw >= 0) & (iw < W)
            pix = row + iw.to(tl.int64) * sx_w
            xv = tl.load(x_img + pix[:, None] + c[None, :], mask=ok[:, None] & c_mask[None, :], other=0.0)
            wv = tl.load(w_c + kh * sw_h + kw * sw_w, mask=c_mask, other=0.0)
            acc += xv.to(tl.float32) * wv.to(tl.float32)[None, :]

    bv = tl.load(b_ptr + c.to(tl.int64) * sb_c, mask=c_mask, other=0.0)
    y = activation(acc + bv.to(tl.float32)[None, :], ACT)
    mask = p_mask[:, None] & c_mask[None, :]
    o_pix = n.to(tl.int64) * so_n + oh.to(tl.int64) * so_h + ow.to(tl.int64) * so_w
    tl.store(out_ptr + o_pix[:, None] + c[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)
    if SE_SUMS:
        tl.store(sums_ptr + n.to(tl.int64) * ss_n + pb * C + c, tl.sum(tl.where(mask, y, 0.0), axis=0), mask=c_mask)


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
    p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    c_mask = c < C
    p_mask = p < OH * OW
    oh = p // OW
    ow = p % OW
    ih0 = oh * STRIDE - pad_top
    iw0 = ow * STRIDE - pad_left
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
    y = activation(acc + bv.to(tl.float32)[:, None], ACT)
    mask = c_mask[:, None] & p_mask[None, :]
    o_chan = n.to(tl.int64) * so_n + c.to(tl.int64) * so_c
    o_pix = oh.to(tl.int64) * so_h + ow.to(tl.int64) * so_w
    tl.store(out_ptr + o_chan[:, None] + o_pix[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)
    if SE_SUMS:
        tl.store(sums_ptr + n.to(tl.int64) * ss_n + pb * C + c, tl.sum(tl.where(mask, y, 0.0), axis=1), mask=c_mask)


def tap_major(weight: torch.Tensor) -> torch.Tensor:
    """The same [C, 1, k, k] weight stored as [k, k, C] (channel stride 1): the channels_last
    kernel then loads each tap's weights as vectors. Call once, when folding, not per call."""
    return weight[:, 0].permute(1, 2, 0).contiguous().permute(2, 0, 1).unsqueeze(1)


def _empty_partials(n, rows, c, device):
    """The uninitialised fp32 [N, rows, C] partial-sums buffer (a function, so tests can poison it)."""
    return torch.empty((n, rows, c), dtype=torch.float32, device=device)


def dwconv_bn_act_partials(x, weight, bias, stride, pad_top, pad_left, out_h, out_w, act_code, se_sums,
                           config=None):
    """Launch the fused kernel; arguments as `dwconv_bn_act`. One launch, nothing else on the device.

    Returns (out, partials): partials is an fp32 [N, P_blocks, C] tensor (channel stride 1) whose
    sum over dim 1 is the [N, C] SE sums, every element written by the kernel; None without
    se_sums. P_blocks = cdiv(out_h * out_w, BLOCK_P of the config that ran). `config`: a triton.Config
    to run instead of the picked one (NHWC_CONFIGS / NCHW_CONFIGS; tests and the tuner).
    """
    n, c, h, w = x.shape
    k = weight.shape[-1]
    out = empty_like_layout(x, (n, c, out_h, out_w))
    channels_last = is_channels_last(x)
    kernel = _dwconv_nhwc_kernel if channels_last else _dwconv_strided_kernel
    if config is None:
        table = NHWC if channels_last else STRIDED
        config = table.pick((TRITON_DTYPES[x.dtype], n, c, h, w, k, stride), x.device)
    launch = launch_options(config)
    pixels = out_h * out_w
    partials = _empty_partials(n, triton.cdiv(pixels, launch["BLOCK_P"]), c, x.device) if se_sums else None
    if out.numel() == 0:
        return out, partials  # partials has no elements either (n, c or out_h * out_w is 0)
    if channels_last:
        strides = (x.stride(0), x.stride(2), x.stride(3), weight.stride(0), weight.stride(2), weight.stride(3),
                   bias.stride(0), out.stride(0), out.stride(2), out.stride(3))
        vec = 16 // x.element_size()
        divisible = (c, x.stride(0), x.stride(2), x.stride(3), out.stride(0), out.stride(2), out.stride(3))
        launch["VEC"] = vec if all(v % vec == 0 for v in divisible) else 1
        tap_major_w = weight.stride(0) == 1 and weight.stride(2) % vec == 0 and weight.stride(3) % vec == 0
        launch["W_VEC"] = vec if tap_major_w else 1
    else:
        strides = (*x.stride(), weight.stride(0), weight.stride(2), weight.stride(3), bias.stride(0),
                   *out.stride())
    grid = (n * triton.cdiv(pixels, launch["BLOCK_P"]) * triton.cdiv(c, launch["BLOCK_C"]),)
    # Without se_sums the kernel never touches sums_ptr: an uninitialised 1-element stand-in
    # (torch.empty runs no kernel).
    sums_arg = partials if se_sums else torch.empty(1, dtype=torch.float32, device=x.device)
    kernel[grid](x, weight, bias, out, sums_arg,
                 c, h, w, out_h, out_w, pad_top, pad_left, *strides, sums_arg.stride(0),
                 K=k, STRIDE=stride, ACT=act_code, SE_SUMS=bool(se_sums), **launch)
    return out, partials


def dwconv_bn_act(x, weight, bias, stride, pad_top, pad_left, out_h, out_w, act_code, se_sums, config=None):
    """Launch the fused kernel; arguments as the C++ schema (geometry resolved, checked by the op).

    Returns (out, sums): out [N, C, out_h, out_w] in x's dtype and memory format, sums fp32 [N, C]
    (contiguous), or an empty tensor without se_sums (the schema's convention). `config`: as in `dwconv_bn_act_partials`. With se_sums the kernel's partial sums are reduced here: a view when there is
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
    become constexprs. Per dtype: every config with k = 3, stride 1, SiLU and SE sums; then, with the first
    config, every other value of each constexpr the launcher sets (k 1/5/7, stride 2, every activation,
    no SE sums; NHWC: [C, 1, k, k] weights (W_VEC = 1), C a multiple of 8 only, and unaligned C (VEC = 1)).
    """
    from .._common import ACTIVATIONS, CONV_ACTIVATIONS

    out = []
    for dt in TRITON_DTYPES.values():
        vec = 4 if dt == "fp32" else 8
        ptrs = dict(x_ptr=f"*{dt}:16", w_ptr=f"*{dt}:16", b_ptr=f"*{dt}:16", out_ptr=f"*{dt}:16",
                    sums_ptr="*fp32:16", H="i32", W="i32", OH="i32", OW="i32", pad_top="i32", pad_left="i32")
        nhwc = dict(ptrs, C="i32:16", sx_n="i32:16", sx_h="i32:16", sx_w="i32:16", sw_c=1, sw_h="i32:16",
                    sw_w="i32:16", sb_c=1, so_n="i32:16", so_h="i32:16", so_w="i32:16", ss_n="i32:16")
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
        for kernel, args, table in ((_dwconv_nhwc_kernel, nhwc, NHWC_CONFIGS),
                                    (_dwconv_strided_kernel, strided, NCHW_CONFIGS)):
            nhwc_kernel = kernel is _dwconv_nhwc_kernel
            cases = [(args, cfg, base, vec, vec) for cfg in table] + [(args, table[0], c, vec, vec) for c in others]
            if nhwc_kernel:
                cases += [(a, table[0], base, v, wv) for a, v, wv in nhwc_variants]
            for a, cfg, spec, v, wv in cases:
                consts = {name: val for name, val in a.items() if isinstance(val, int)}
                consts.update(cfg.kwargs, **spec)
                if nhwc_kernel:
                    consts.update(VEC=v, W_VEC=wv)
                sig = dict(a, **{name: "constexpr" for name in consts})
                out.append((kernel, sig, dict(consts, num_warps=cfg.num_warps, num_stages=cfg.num_stages)))
    return out


def hot_loop(kernel, consts):
    """For tools/kernel_report: (outputs one thread finishes per iteration of the kh loop, iterations)."""
    threads = 32 * consts["num_warps"]
    per_thread = consts["BLOCK_P"] * consts["BLOCK_C"] / threads
    return per_thread / consts["K"], consts["K"]
