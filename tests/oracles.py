"""The tests' float64 oracles. They share no code with effkernels (neither the kernels nor
effkernels.reference, which is itself the "eager" backend under test): the depthwise geometry comes
from explicit (top, bottom, left, right) pads written in the test cases, applied with F.pad, and the
convolution is its definition, a sum over the k x k taps of strided slices (torch's float64 grouped
F.conv2d took seconds per call for C = 1155 on a busy 2-core machine; tests/test_oracles.py checks the
two agree); activations are written out from their formulas; the 1x1 convs and the SE MLP are einsums.
Every function takes any float tensors and returns float64 tensors on the CPU."""
import torch
import torch.nn.functional as F


def act(y, name):
    """The activation `name` from its formula (not torch.nn.functional's implementation)."""
    if name == "none":
        return y
    if name == "relu":
        return y.clamp_min(0)
    if name == "relu6":
        return y.clamp(0, 6)
    if name == "silu":
        return y / (1 + torch.exp(-y))
    if name == "hardswish":
        return y * (y + 3).clamp(0, 6) / 6
    if name == "sigmoid":
        return 1 / (1 + torch.exp(-y))
    if name == "hardsigmoid":
        return (y / 6 + 0.5).clamp(0, 1)
    raise ValueError(name)


def f64(t):
    return None if t is None else t.detach().to("cpu", torch.float64)


def dwconv(x, weight, bias, stride, pads, activation):
    """act(depthwise conv of x zero-padded by pads = (top, bottom, left, right) + bias): [N, C, OH, OW]."""
    top, bottom, left, right = pads
    xp = F.pad(f64(x), (left, right, top, bottom))
    w = f64(weight)[:, 0]
    k = w.shape[-1]
    oh, ow = (xp.shape[2] - k) // stride + 1, (xp.shape[3] - k) // stride + 1
    y = f64(bias)[None, :, None, None].expand(x.shape[0], -1, oh, ow)
    for i in range(k):
        for j in range(k):
            tap = xp[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            y = y + w[None, :, i, j, None, None] * tap
    return act(y, activation)


def channel_sums(x):
    return f64(x).sum(dim=(2, 3))


def se_excite(sums, inv_hw, w1, b1, w2, b2, activation, gate):
    hidden = act(torch.einsum("nc,sc->ns", f64(sums) * inv_hw, f64(w1)) + f64(b1), activation)
    return act(torch.einsum("ns,cs->nc", hidden, f64(w2)) + f64(b2), gate)


def se_scale(x, scale):
    return f64(x) * f64(scale)[:, :, None, None]


def squeeze_excite(x, w1, b1, w2, b2, activation, gate):
    hw = x.shape[2] * x.shape[3]
    return se_scale(x, se_excite(channel_sums(x), 1.0 / hw, w1, b1, w2, b2, activation, gate))


def pointwise_conv(x, weight, bias, activation="none", scale=None, residual=None):
    """act(sum_c weight[o, c] * x[n, c] * scale[n, c] + bias[o]) + residual."""
    x = f64(x) if scale is None else se_scale(x, scale)
    y = act(torch.einsum("nchw,oc->nohw", x, f64(weight)) + f64(bias)[:, None, None], activation)
    return y if residual is None else y + f64(residual)


def mbconv(x, expand_w, expand_b, dw_w, dw_b, stride, pads, se_w1, se_b1, se_w2, se_b2, proj_w, proj_b, residual,
           activation, se_activation, se_gate):
    """An MBConv block with BN folded, composed from the oracles above (dw geometry from explicit pads)."""
    h = f64(x) if expand_w is None else pointwise_conv(x, expand_w, expand_b, activation)
    h = dwconv(h, dw_w, dw_b, stride, pads, activation)
    scale = None
    if se_w1 is not None:
        scale = se_excite(channel_sums(h), 1.0 / (h.shape[2] * h.shape[3]), se_w1, se_b1, se_w2, se_b2,
                          se_activation, se_gate)
    return pointwise_conv(h, proj_w, proj_b, "none", scale, x if residual else None)
