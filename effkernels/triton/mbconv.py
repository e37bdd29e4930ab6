"""The Triton MBConv block's steps that chain kernels of the other modules, and its GEMM choice.

Two ways to run the block's 1x1 convs, chosen per shape by `gemm_paths` (the GEMM table, else `_gemm_rule`):
- library GEMMs (channels_last only): the expand is torch.mm (cuBLAS on a GPU) writing the
  pre-activation, whose bias + activation the depthwise kernel applies as it loads it (its prologue);
  the project is an in-place batched GEMM, y[n] += h[n] @ W'[n]^T (torch.baddbmm_, beta = 1), with
  W'[n] = W * s[n] (the SE scale folded into per-image weights, written by the excite kernel) and y
  initialised to bias (+ residual) by the depthwise kernel (Y_INIT), since an ATen GEMM has no bias
  epilogue for batched operands; without SE, y += h @ W^T over all pixels (torch.addmm_);
- the fused Triton GEMMs (triton/pointwise_conv.py): expand with bias + activation in its epilogue,
  project with the SE scale in its prologue and bias + residual in its epilogue.
Either way a block is at most 4 device launches. `dw_se` is the depthwise step (+ SE excite), one custom
op under torch.compile (effkernels_triton::mbconv_dw_se) because the SE partial sums' shape depends
on the tile the launcher picks.
"""
from __future__ import annotations

import math

import torch
import triton

from ._common import TRITON_DTYPES, KernelConfigs, torch_dtype
from .dwconv_bn_act import dense_nhwc_fits, dwconv_bn_act_partials
from .squeeze_excite import se_excite, se_project_weights

_FIELDS = ("dtype", "N", "HW", "C_IN", "C_EXP", "C_OUT", "SE")
_CATEGORICAL = ("dtype", "SE")


def _paths(expand_lib: int, project_lib: int) -> triton.Config:
    return triton.Config({"EXPAND_LIB": expand_lib, "PROJECT_LIB": project_lib}, num_warps=4, num_stages=1)


PATH_CONFIGS = [_paths(e, p) for e in (1, 0) for p in (1, 0)]


def _gemm_rule(key) -> triton.Config:
    """Library GEMMs for both 1x1 convs, except the project of an SE block whose output has fewer pixels
    than channels (H * W < C_out: the late stages, e.g. 7x7 -> 320): there the per-image weights W'
    (N * C_out * C_exp elements) would outweigh the activations (N * H * W * C_exp), so the scale stays
    in the Triton GEMM's prologue. An estimate of the crossover (weights written and read once vs. the
    prologue's synchronous wgmma, GPU-REVIEW.md 4 and 6) for a GPU run to measure: `python -m
    effkernels.tune` times the four combinations per shape and writes the winner to the table."""
    dtype, n, hw, c_in, c_exp, c_out, se = key
    return _paths(1, 0 if se and hw < c_out else 1)


PATHS = KernelConfigs("mbconv_gemms", _FIELDS, _CATEGORICAL, lambda key: PATH_CONFIGS, _gemm_rule,
                      interpreter=_paths(1, 1))


def library_allowed(x: torch.Tensor, c_exp: int, out_h: int, out_w: int) -> bool:
    """Whether a block on x may run library GEMMs: a dense channels_last x (the GEMM views copy nothing) whose
    expanded tensor the NHWC depthwise kernel serves (its prologue and y initialisation)."""
    n, c_in, h, w = x.shape
    return (c_in > 1 and x.is_contiguous(memory_format=torch.channels_last)
            and dense_nhwc_fits(c_exp, h, w, out_h, out_w))


def gemm_paths(x: torch.Tensor, c_exp: int, c_out: int, out_h: int, out_w: int, se: bool,
               has_expand: bool, config: triton.Config | None = None) -> tuple:
    """(expand by a library GEMM, project by a library GEMM) for a block on x: where `library_allowed`,
    the table's or the rule's choice; anything else runs the fused Triton GEMMs. Under the interpreter
    (the CPU tests) both are library GEMMs wherever allowed; tests pin the other paths. `config`: a
    PATH_CONFIGS entry to follow instead of the picked one (the tuner)."""
    if not library_allowed(x, c_exp, out_h, out_w):
        return False, False
    n, c_in = x.shape[:2]
    key = (TRITON_DTYPES[x.dtype], n, out_h * out_w, c_in, c_exp, c_out, se)
    # Tracing (torch.compile) reads no table: the rule's arithmetic traces into guards, a file read would not.
    if config is None:
        config = _gemm_rule(key) if torch.compiler.is_compiling() else PATHS.pick(key, x.device)
    cfg = config.kwargs
    return bool(cfg["EXPAND_LIB"]) and has_expand, bool(cfg["PROJECT_LIB"])


def expand_preactivation(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [N, C_in, H, W] (channels_last, dense) times weight [C_out, C_in]^T: [N, C_out, H, W] channels_last,
    no bias, no activation. One library GEMM over the N * H * W pixels; the views around it copy nothing."""
    n, c, h, w = x.shape
    out = torch.mm(x.permute(0, 2, 3, 1).reshape(n * h * w, c), weight.t())
    return out.view(n, h, w, weight.shape[0]).permute(0, 3, 1, 2)  # (n may be 0: no -1)


def project_into(y: torch.Tensor, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """y += conv1x1(h, weight) in place, one library GEMM; y [N, C_out, H, W] and h [N, C_exp, H, W]
    channels_last (dense); weight [C_out, C_exp] (all images), or [N, C_out, C_exp] (per image)."""
    n, c_exp, hh, ww = h.shape
    c_out = y.shape[1]  # (named, not -1: n may be 0)
    pixels = h.permute(0, 2, 3, 1)
    out = y.permute(0, 2, 3, 1)
    if weight.dim() == 3:
        out.reshape(n, hh * ww, c_out).baddbmm_(pixels.reshape(n, hh * ww, c_exp), weight.transpose(1, 2))
    else:
        out.reshape(n * hh * ww, c_out).addmm_(pixels.reshape(n * hh * ww, c_exp), weight.t())
    return y


def dw_se(h, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, act, pre_b, pre_act, se_w1, se_b1, se_w2, se_b2,
          se_act, se_gate, proj_w, proj_b, residual):
    """The block's depthwise step (+ SE excite): one or two launches. Returns (out, se_out, y) as
    `with_excite` does, out the depthwise output [N, C, out_h, out_w]. pre_b (with activation pre_act): h is
    the expand's pre-activation (library expand)."""
    prologue = None if pre_b is None else (pre_b, pre_act)

    def depthwise(se_sums, y_init):
        return dwconv_bn_act_partials(h, dw_w, dw_b, stride, pad_top, pad_left, out_h, out_w, act, se_sums,
                                      prologue=prologue, y_init=y_init)
    return with_excite(depthwise, h, out_h, out_w, se_w1, se_b1, se_w2, se_b2, se_act, se_gate, proj_w, proj_b,
                       residual)


def with_excite(depthwise, like, out_h, out_w, se_w1, se_b1, se_w2, se_b2, se_act, se_gate, proj_w, proj_b,
                residual):
    """Steps 2-3 around a depthwise launcher `depthwise(se_sums, y_init) -> (out, partials)` (this module's
    `dw_se`, or the fused expand + depthwise of triton/mbconv_fused.py), on a block in `like`'s dtype and device.
    Returns (out, se_out, y):
    - se_out: without SE an empty tensor; with proj_w the per-image project weights W' [N, C_out, C] in like's
      dtype, else the fp32 [N, C] SE scale;
    - y: with proj_w the project output, which the depthwise kernel initialises to proj_b (+ residual),
      channels_last, for `project_into`; else an empty tensor."""
    n = like.shape[0]
    y = like.new_empty((0,))
    y_init = None
    if proj_w is not None:
        y = torch.empty((n, proj_w.shape[0], out_h, out_w), dtype=like.dtype, device=like.device,
                        memory_format=torch.channels_last)
        y_init = (y, proj_b, residual)
    se = se_w1 is not None
    out, partials = depthwise(se, y_init)
    if not se:
        return out, like.new_empty((0,), dtype=torch.float32), y
    inv_hw = 1.0 / (out_h * out_w)
    if proj_w is not None:
        return out, se_project_weights(partials, inv_hw, se_w1, se_b1, se_w2, se_b2, se_act, se_gate, proj_w), y
    return out, se_excite(partials, inv_hw, se_w1, se_b1, se_w2, se_b2, se_act, se_gate), y


@PATHS.runner
def _paths_runner(key, device):
    """For the tuner: a random block of `key` (k 3, stride 1 on a square map, SiLU, residual when C_in == C_out,
    the SE squeeze C_in / 4), run whole through ops.mbconv's Triton path with the GEMMs `config` says (never
    the fused expand: the paths compared are those of the unfused block)."""
    from .._common import ACTIVATIONS, conv_geometry, tap_major
    from ..ops.mbconv import _triton_block

    dtype, n, hw, c_in, c_exp, c_out, se = key
    side = math.isqrt(hw)
    h, w = (side, side) if side * side == hw else (1, hw)
    like = dict(device=device, dtype=torch_dtype(dtype))
    x = torch.randn(n, c_in, h, w, **like).contiguous(memory_format=torch.channels_last)
    s = max(1, c_in // 4)
    ew, eb = (torch.randn(c_exp, c_in, **like) / c_in**0.5, torch.randn(c_exp, **like)) if c_exp != c_in else (None, None)
    dw, db = tap_major(torch.randn(c_exp, 1, 3, 3, **like) / 3), torch.randn(c_exp, **like)
    se_ws = ((torch.randn(s, c_exp, **like) / c_exp**0.5, torch.randn(s, **like), torch.randn(c_exp, s, **like) / s**0.5,
              torch.randn(c_exp, **like)) if se else (None,) * 4)
    pw, pb = torch.randn(c_out, c_exp, **like) / c_exp**0.5, torch.randn(c_out, **like)
    geom = conv_geometry(h, w, 3, 1, 1)
    silu = ACTIVATIONS["silu"]
    return lambda config: _triton_block(x, ew, eb, dw, db, 1, 1, geom, *se_ws, pw, pb, c_in == c_out, "silu", silu,
                                        silu, ACTIVATIONS["sigmoid"], gemm_config=config)


def aot_variants():
    return []  # no kernels of its own
