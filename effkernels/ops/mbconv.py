"""mbconv: a whole MBConv inference forward (BN folded) in as few kernels as the data flow allows.

Triton backend, at most 4 device launches, the expanded tensor written once and read twice. The two
1x1 convs run as library GEMMs or as fused Triton GEMMs, per shape (triton/mbconv.py: `gemm_paths`,
a tuned table entry, else a documented rule):
  1. expand: torch.mm writing the pre-activation (library), or the Triton GEMM with bias + act
     (skipped when the expand ratio is 1)
  2. depthwise conv + bias + act + SE sums      (NHWC kernel; with a library expand it applies the
     expand's bias + act as it loads; fp32 [N, P_blocks, C] partial SE sums, one row per pixel block;
     with a library project it also initialises the project output to bias (+ residual))
  3. SE excite MLP on the sums, adding up the P_blocks rows (skipped without SE): writes the fp32
     scale, or per-image project weights W'[n] = W * scale[n] for a library project
  4. project: torch.baddbmm_ / addmm_ into the initialised output (library), or the Triton GEMM
     with the scale as prologue and bias + residual as epilogue
Nothing else runs on the device: every buffer is torch.empty and written once by a kernel.
Steps 2 and 3 are one custom op under torch.compile (effkernels_triton::mbconv_dw_se: its outputs
have static shapes, the partials' do not).
Where the tuned table (or its heuristic) says so per shape, steps 1-3 are one custom op instead,
effkernels_triton::mbconv_expand_dw_se, whose kernel computes the expand inside the depthwise kernel
(the expanded tensor never exists in memory; triton/mbconv_fused.py, `mbconv_path` says which path) and
writes the same partial SE sums; steps 3-4 then run as on the unfused path, the library project's output
initialised by the fused kernel as the depthwise kernel would.
"cuda"/"cpu": torch.ops.effkernels.mbconv; "eager": reference.mbconv_ref. On the cpu backend with the 1x1
weights packed once (`packed`, from pack_cpu), torch.ops.effkernels.mbconv_packed, whose `path` ("fused": the
expand conv computed inside the depthwise kernel's row bands, or "unfused") cpu_path picks per block
(csrc/cpu/mbconv_block.cpp, docs/CONTRACTS.md).
"""
from __future__ import annotations

import torch

from .. import _dispatch
from .._common import (FLOAT_DTYPES, SE_ACTIVATIONS, SE_GATES, activation_code, check_inference, check_tensor,
                       conv_geometry, empty_like_layout, is_channels_last)
from ..backends import resolve
from ..reference import mbconv_ref
from .dwconv_bn_act import _check as _check_dw
from .pointwise_conv import pack_cpu as pack_pointwise
from .squeeze_excite import _check_triton_squeeze


def _mbconv_fake(x, expand_w, expand_b, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, se_w1, se_b1,
                         se_w2, se_b2, proj_w, proj_b, residual, activation, se_activation, se_gate):
    return empty_like_layout(x, (x.shape[0], proj_w.shape[0], out_h, out_w))


def _steps_fake(like, c, out_h, out_w, se, proj_w):
    """The outputs of steps 1-3 (triton.mbconv.with_excite): out [N, c, out_h, out_w] in like's layout, se_out,
    y."""
    n = like.shape[0]
    out = empty_like_layout(like, (n, c, out_h, out_w))
    if not se:
        se_out = like.new_empty((0,), dtype=torch.float32)
    else:
        se_out = (like.new_empty((n, c), dtype=torch.float32) if proj_w is None
                  else like.new_empty((n, proj_w.shape[0], c)))
    if proj_w is None:
        return out, se_out, like.new_empty((0,))
    return out, se_out, torch.empty((n, proj_w.shape[0], out_h, out_w), dtype=like.dtype, device=like.device,
                                    memory_format=torch.channels_last)


def _dw_se_fake(h, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, act, pre_b, pre_act, se_w1, se_b1, se_w2,
                se_b2, se_act, se_gate, proj_w, proj_b, residual):
    return _steps_fake(h, h.shape[1], out_h, out_w, se_w1 is not None, proj_w)


def _mbconv_packed_fake(x, expand_w, expand_b, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, se_w1, se_b1,
                        se_w2, se_b2, proj_w, proj_b, residual, activation, se_activation, se_gate, path="auto"):
    return empty_like_layout(x, (x.shape[0], proj_b.shape[0], out_h, out_w))


_dispatch.define("mbconv", _mbconv_fake)  # C++ only: the Triton block is composed below
_dispatch.define("mbconv_packed", _mbconv_packed_fake)  # C++ (CPU) only
_dispatch.define("mbconv_dw_se", _dw_se_fake, "(Tensor h, Tensor dw_w, Tensor dw_b, int stride, int pad_top, "
                 "int pad_left, int out_h, int out_w, int act, Tensor? pre_b, int pre_act, Tensor? se_w1, "
                 "Tensor? se_b1, Tensor? se_w2, Tensor? se_b2, int se_act, int se_gate, Tensor? proj_w, "
                 "Tensor? proj_b, Tensor? residual) -> (Tensor, Tensor, Tensor)", "effkernels.triton.mbconv:dw_se",
                 native=False)


def _expand_dw_se_fake(x, expand_w, expand_b, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, act, se_w1,
                       se_b1, se_w2, se_b2, se_act, se_gate, proj_w, proj_b, residual):
    return _steps_fake(x, expand_w.shape[0], out_h, out_w, se_w1 is not None, proj_w)


_dispatch.define("mbconv_expand_dw_se", _expand_dw_se_fake, "(Tensor x, Tensor expand_w, Tensor expand_b, Tensor dw_w, "
                 "Tensor dw_b, int stride, int pad_top, int pad_left, int out_h, int out_w, int act, Tensor? se_w1, "
                 "Tensor? se_b1, Tensor? se_w2, Tensor? se_b2, int se_act, int se_gate, Tensor? proj_w, "
                 "Tensor? proj_b, Tensor? residual) -> (Tensor, Tensor, Tensor)",
                 "effkernels.triton.mbconv_fused:expand_dw_se", native=False)


def _check(x, expand_w, expand_b, dw_w, dw_b, stride, padding, se_w1, se_b1, se_w2, se_b2, proj_w, proj_b,
           residual):
    """Validate shapes/dtypes; return (pad_top, pad_left, out_h, out_w)."""
    check_tensor(x, "x", ndim=4, dtype=FLOAT_DTYPES)
    n, c_in, h, w = x.shape
    like = dict(dtype=x.dtype, device=x.device)
    if (expand_w is None) != (expand_b is None):
        raise ValueError("expand_w, expand_b: give both (expand ratio > 1) or neither (expand ratio 1)")
    if expand_w is not None:
        check_tensor(expand_w, "expand_w", shape=(None, c_in), **like)
        c_exp = expand_w.shape[0]
        check_tensor(expand_b, "expand_b", shape=(c_exp,), **like)
    else:
        c_exp = c_in
    check_tensor(dw_w, "dw_w", shape=(c_exp, 1, None, None), **like)
    k = dw_w.shape[-1]
    if dw_w.shape[-2] != k:
        raise ValueError(f"dw_w: expected a square kernel [C, 1, k, k], got {tuple(dw_w.shape)}")
    check_tensor(dw_b, "dw_b", shape=(c_exp,), **like)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride: expected a positive int, got {stride!r}")
    geom = conv_geometry(h, w, k, stride, padding)
    se = (se_w1, se_b1, se_w2, se_b2)
    if any(t is None for t in se) and any(t is not None for t in se):
        raise ValueError("se_w1, se_b1, se_w2, se_b2: give all four (block with SE) or none")
    if se_w1 is not None:
        check_tensor(se_w1, "se_w1", shape=(None, c_exp), **like)
        s = se_w1.shape[0]
        check_tensor(se_b1, "se_b1", shape=(s,), **like)
        check_tensor(se_w2, "se_w2", shape=(c_exp, s), **like)
        check_tensor(se_b2, "se_b2", shape=(c_exp,), **like)
    check_tensor(proj_w, "proj_w", shape=(None, c_exp), **like)
    c_out = proj_w.shape[0]
    check_tensor(proj_b, "proj_b", shape=(c_out,), **like)
    if not isinstance(residual, bool):
        raise ValueError(f"residual: expected a bool, got {residual!r}")
    if residual and (c_out != c_in or geom[2:] != (h, w)):
        raise ValueError(f"residual: the block maps {c_in}x{h}x{w} to {c_out}x{geom[2]}x{geom[3]}; "
                         "a residual needs the same channels and size (stride 1, C_out == C_in)")
    return geom


def pack_cpu(expand_w, proj_w) -> tuple:
    """(expand_w, proj_w) packed for the cpu backend's block kernels (expand_w may be None): mbconv's `packed`."""
    return None if expand_w is None else pack_pointwise(expand_w), pack_pointwise(proj_w)


def cpu_path(x_shape, c_exp: int, kernel: int, stride: int, has_expand: bool) -> str:
    """The path ("fused" or "unfused") the cpu backend's block takes for input shape x_shape [N, C_in, H, W]
    at the current thread count: the measured heuristic in csrc/cpu/mbconv_block.cpp (choose_path)."""
    n, c_in, h, w = x_shape
    return torch.ops.effkernels.mbconv_path(n, c_in, h, w, c_exp, kernel, stride, has_expand)


def block_plan(x, expand_w, expand_b, dw_w, dw_b, stride, padding, se_w1, se_b1, se_w2, se_b2, proj_w, proj_b,
               residual, activation="silu", se_activation="silu", se_gate="sigmoid", path="auto") -> tuple:
    """mbconv's argument checks (every backend); returns the non-tensor arguments of the block op,
    (pad_top, pad_left, out_h, out_w, act, se_act, se_gate, path) as codes. They depend on the inputs' shapes,
    dtype and device only, so a layer checks once per input shape and reuses them (MBConvFolding: checking on every
    call cost ~2 ms of a ~40 ms converted B0 forward at batch 1, 1 thread)."""
    geom = _check(x, expand_w, expand_b, dw_w, dw_b, stride, padding, se_w1, se_b1, se_w2, se_b2, proj_w, proj_b,
                  residual)
    return (*geom, activation_code(activation), activation_code(se_activation, "se_activation", SE_ACTIVATIONS),
            activation_code(se_gate, "se_gate", SE_GATES), path)


def packed_args(packed, expand_b, dw_w, dw_b, stride, se_w1, se_b1, se_w2, se_b2, proj_b, residual, plan) -> tuple:
    """The arguments after x of torch.ops.effkernels.mbconv_packed, with `plan` from block_plan on inputs of x's
    shape, dtype and device (the C++ op checks again every tensor it reads, so a stale plan fails there with the
    argument named)."""
    pad_top, pad_left, out_h, out_w, act, se_act, se_gate, path = plan
    return (packed[0], expand_b, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, se_w1, se_b1, se_w2, se_b2,
            packed[1], proj_b, residual, act, se_act, se_gate, path)


def run_packed(x, args: tuple):
    """mbconv_packed on x with the rest of its arguments from packed_args."""
    check_inference("mbconv", x)
    return _dispatch.run("mbconv_packed", "cpu", x, *args)


def mbconv(x, expand_w, expand_b, dw_w, dw_b, stride, padding, se_w1, se_b1, se_w2, se_b2, proj_w, proj_b,
           residual, activation="silu", se_activation="silu", se_gate="sigmoid", backend="auto", packed=None,
           path="auto"):
    """MBConv inference forward with BN folded into every conv (see reference.mbconv_ref).

    x [N, C_in, H, W]; expand_w [C_exp, C_in], expand_b [C_exp] (None when expand ratio is 1);
    dw_w [C_exp, 1, k, k], dw_b [C_exp]; stride; padding (as _common.conv_window takes it: None ((k - 1) // 2),
    an int or a pair, "valid", "same" (TF SAME) or (top, bottom, left, right));
    se_w1 [S, C_exp], se_b1 [S], se_w2 [C_exp, S], se_b2 [C_exp] (None without SE);
    proj_w [C_out, C_exp], proj_b [C_out]; residual (bool): add x to the output.
    All parameters in x's dtype. Returns [N, C_out, out_h, out_w] in x's dtype and memory format.
    packed: pack_cpu(expand_w, proj_w), made once, read by the cpu backend (other backends ignore it); path:
    the cpu block's path with `packed`, "auto" (cpu_path's choice), "fused" (needs expand_w) or "unfused".
    """
    plan = block_plan(x, expand_w, expand_b, dw_w, dw_b, stride, padding, se_w1, se_b1, se_w2, se_b2, proj_w, proj_b,
                    residual, activation, se_activation, se_gate, path)
    pad_top, pad_left, out_h, out_w, act, se_act, se_gate_code, _ = plan
    be = resolve(backend, x.device)
    if be == "eager":
        return mbconv_ref(x, expand_w, expand_b, dw_w, dw_b, stride, padding, se_w1, se_b1, se_w2, se_b2, proj_w,
                          proj_b, residual, activation, se_activation, se_gate)
    params = (x, expand_w, expand_b, dw_w, dw_b, se_w1, se_b1, se_w2, se_b2, proj_w, proj_b)
    check_inference("mbconv", *params)
    if be == "cpu" and packed is not None:
        return run_packed(x, packed_args(packed, expand_b, dw_w, dw_b, stride, se_w1, se_b1, se_w2, se_b2, proj_b,
                                         residual, plan))
    if be != "triton":
        return _dispatch.run("mbconv", be, x, expand_w, expand_b, dw_w, dw_b, stride, pad_top, pad_left,
                             out_h, out_w, se_w1, se_b1, se_w2, se_b2, proj_w, proj_b, residual, act, se_act,
                             se_gate_code)
    return _triton_block(x, expand_w, expand_b, dw_w, dw_b, stride, padding, (pad_top, pad_left, out_h, out_w),
                         se_w1, se_b1, se_w2, se_b2, proj_w, proj_b, residual, activation, act, se_act, se_gate_code)


def _triton_block(x, expand_w, expand_b, dw_w, dw_b, stride, padding, geom, se_w1, se_b1, se_w2, se_b2, proj_w,
                  proj_b, residual, activation, act, se_act, se_gate, gemm_config=None):
    """gemm_config: a triton.mbconv.PATH_CONFIGS entry to run the unfused block with (the tuner's runner).
    The GEMM choice is asked for first (also on the fused path: the tuner records the key it asks for)."""
    from ..triton.mbconv import expand_preactivation, gemm_paths, project_into
    from ..triton.mbconv_fused import mbconv_path

    se = se_w1 is not None
    if se:
        _check_triton_squeeze(se_w1, "se_w1")
    expand_lib, project_lib = gemm_paths(x, dw_w.shape[0], proj_w.shape[0], geom[2], geom[3], se,
                                         expand_w is not None, gemm_config)
    res = x if residual else None
    lib = (proj_w, proj_b, res) if project_lib else (None, None, None)
    if gemm_config is None and expand_w is not None and mbconv_path(
            x.dtype, *x.shape[:2], expand_w.shape[0], *x.shape[2:], dw_w.shape[-1], stride, activation,
            is_channels_last(x), x.device) == "fused":
        h, se_out, y = _dispatch.run("mbconv_expand_dw_se", "triton", x, expand_w, expand_b, dw_w, dw_b, stride,
                                     *geom, act, se_w1, se_b1, se_w2, se_b2, se_act, se_gate, *lib)
    else:
        pre_b = None
        if expand_w is None:
            h = x
        elif expand_lib:
            h, pre_b = expand_preactivation(x, expand_w), expand_b
        else:
            h = _dispatch.run("pointwise_conv", "triton", x, expand_w, expand_b, act, None, None)
        # The dw kernel's limits (k, stride, activation) as the public op checks them.
        dw_act, dw_geom = _check_dw(h, dw_w, dw_b, stride, padding, activation, se)
        h, se_out, y = _dispatch.run("mbconv_dw_se", "triton", h, dw_w, dw_b, stride, *dw_geom, dw_act, pre_b, act,
                                     se_w1, se_b1, se_w2, se_b2, se_act, se_gate, *lib)
    if project_lib:
        return project_into(y, h, se_out if se else proj_w)
    return _dispatch.run("pointwise_conv", "triton", h, proj_w, proj_b, 0, se_out if se else None, res)
