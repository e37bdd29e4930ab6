"""One small call of every CUDA kernel of effkernels._C, for `compute-sanitizer --tool memcheck`.

    compute-sanitizer --tool memcheck --error-exitcode 1 python benchmarks/sanitize_ops.py
    python benchmarks/sanitize_ops.py --cpu     # the same calls on the C++ CPU kernels (no GPU needed)

Odd sizes (C = 37, 9x9 input, stride 2) and both fp32 and bf16 channels_last, so out-of-bounds
tails and the vectorized paths both run. Each op goes through effkernels.ops with backend="cuda" (the
same arguments users pass; "cpu" with --cpu) and its output is checked finite; an op that is missing or raises is
reported and the script goes on. Exit code 1 when any op failed, 2 when there is nothing to run.
"""
import sys

import torch


def cases(dtype, device, backend):
    """(name, callable) for each op; every tensor small and random."""
    from effkernels import ops  # noqa: PLC0415

    g = torch.Generator(device=device).manual_seed(0)

    def r(*shape, fmt=None):
        t = (torch.randn(*shape, device=device, generator=g) * 0.5).to(dtype)
        return t.contiguous(memory_format=fmt) if fmt is not None else t

    cl = torch.channels_last
    n, c, s, hw = 2, 37, 5, 9
    x = r(n, c, hw, hw, fmt=cl)
    dw_w, dw_b = r(c, 1, 3, 3), r(c)
    w1, b1, w2, b2 = r(s, c), r(s), r(c, s), r(c)
    sums = torch.rand(n, c, device=device, generator=g)
    scale = torch.rand(n, c, device=device, generator=g)
    cin, cexp, cout = 8, 24, 8
    xb = r(n, cin, hw, hw, fmt=cl)
    blk = dict(expand_w=r(cexp, cin), expand_b=r(cexp), dw_w=r(cexp, 1, 5, 5), dw_b=r(cexp),
               se_w1=r(2, cexp), se_b1=r(2), se_w2=r(cexp, 2), se_b2=r(cexp), proj_w=r(cout, cexp), proj_b=r(cout))
    return [
        ("dwconv_bn_act k3 s2", lambda: ops.dwconv_bn_act(x, dw_w, dw_b, 2, 1, "silu", backend=backend)),
        ("dwconv_bn_act se_sums", lambda: ops.dwconv_bn_act(x, dw_w, dw_b, 1, "same", "silu", se_sums=True,
                                                           backend=backend)),
        ("channel_sums", lambda: ops.channel_sums(x, backend=backend)),
        ("se_excite", lambda: ops.se_excite(sums, 1.0 / (hw * hw), w1, b1, w2, b2, backend=backend)),
        ("se_scale", lambda: ops.se_scale(x, scale, backend=backend)),
        ("squeeze_excite", lambda: ops.squeeze_excite(x, w1, b1, w2, b2, backend=backend)),
        ("pointwise_conv scale+residual", lambda: ops.pointwise_conv(x, r(c, c), r(c), "silu", scale=scale,
                                                                      residual=x, backend=backend)),
        ("mbconv", lambda: ops.mbconv(xb, blk["expand_w"], blk["expand_b"], blk["dw_w"], blk["dw_b"], 1, 2,
                                      blk["se_w1"], blk["se_b1"], blk["se_w2"], blk["se_b2"], blk["proj_w"],
                                      blk["proj_b"], True, backend=backend)),
    ]


def main() -> int:
    device = backend = "cpu" if "--cpu" in sys.argv[1:] else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("sanitize_ops: no GPU")
        return 2
    import effkernels  # noqa: PLC0415

    ok, why = effkernels.backends_available()[backend]
    if not ok:
        print(f"sanitize_ops: the {backend} backend is unavailable: {why}")
        return 2
    failed = 0
    for dtype in (torch.float32, torch.bfloat16):
        for name, fn in cases(dtype, device, backend):
            try:
                out = fn()
                if device == "cuda":
                    torch.cuda.synchronize()
                outs = out if isinstance(out, tuple) else (out,)
                finite = all(bool(torch.isfinite(o).all()) for o in outs)
                print(f"sanitize_ops: {name} {str(dtype)[6:]}: {'ok' if finite else 'NON-FINITE output'}", flush=True)
                failed += not finite
            except Exception as e:  # noqa: BLE001 (report every op, keep going)
                print(f"sanitize_ops: {name} {str(dtype)[6:]}: FAILED {type(e).__name__}: {e}", flush=True)
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
