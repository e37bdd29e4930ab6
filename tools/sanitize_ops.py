"""One small call of every effkernels op on each chosen backend, for `compute-sanitizer --tool memcheck`.

    compute-sanitizer --tool memcheck --error-exitcode 1 python tools/sanitize_ops.py      # cuda, then triton
    python tools/sanitize_ops.py --backends cpu        # the same calls on the C++ CPU kernels (no GPU needed)

Odd sizes (C = 37, 9x9 input, stride 2) and both fp32 and bf16 channels_last, so out-of-bounds tails and the
vectorized paths both run; for the depthwise kernel also a tap-major weight on an image wide and tall enough for
several column strips and row chunks of the CUDA kernel, k = 7 at stride 2 (its largest shared-memory ring), an
input one element off 16-byte alignment, and NCHW; channel sums over many pixel tiles; the MBConv block with the
SE scale folded into the project weights and, where the output has fewer pixels than C_out, applied in a pass. Each op goes through effkernels.ops with the backend (the arguments users pass)
and its output is checked finite; an op that raises is reported and the script goes on. Every op registered
for the backend (a kernel for its dispatch key in the effkernels namespace; effkernels_triton for triton)
must have a case here: one without is reported as a failure. Exit code 1 when anything failed, 2 when
there is nothing to run.
"""
import argparse
import sys

import torch

NAMESPACES = {"cuda": ("effkernels", "CUDA"), "cpu": ("effkernels", "CPU"), "triton": ("effkernels_triton", None)}


def cases(dtype, device, backend):
    """(name, schema ops it reaches, callable) for each op; every tensor small and random."""
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
    be = dict(backend=backend)
    wide, tall, big = r(1, 128, 20, 65, fmt=cl), r(1, 96, 40, 23, fmt=cl), r(3, 96, 33, 33, fmt=cl)
    tap_major = r(3, 3, 128).permute(2, 0, 1).unsqueeze(1)  # [C, 1, k, k] view of a [k, k, C] tensor
    off = torch.empty(2 * 11 * 13 * 64 + 1, device=device, dtype=dtype)[1:].view(2, 11, 13, 64).permute(0, 3, 1, 2)
    off.copy_(r(2, 64, 11, 13))
    blk_scale = dict(blk, proj_w=r(40, cexp), proj_b=r(40))  # output 5x5 < C_out = 40: the scale pass
    fused = []
    if backend == "triton":  # the fused expand+depthwise kernel, which a block takes only where its table says
        from effkernels._common import tap_major  # noqa: PLC0415
        from effkernels.triton.mbconv_fused import FUSED_CONFIGS, expand_dw_se  # noqa: PLC0415

        def fused_steps(geom, project):
            return lambda: expand_dw_se(xb, blk["expand_w"], blk["expand_b"], tap_major(blk["dw_w"]), blk["dw_b"],
                                        *geom, 3, blk["se_w1"], blk["se_b1"], blk["se_w2"], blk["se_b2"], 3, 5,
                                        *project, config=FUSED_CONFIGS[0])
        # The Triton project's steps (no project weights), and the library project's (y initialised, + residual).
        fused = [("mbconv_expand_dw_se fused", {"mbconv_expand_dw_se"}, fused_steps((2, 2, 2, 5, 5), (None,) * 3)),
                 ("mbconv_expand_dw_se fused, library project", {"mbconv_expand_dw_se"},
                  fused_steps((1, 2, 2, 9, 9), (blk["proj_w"], blk["proj_b"], xb)))]
    return fused + [
        ("dwconv_bn_act k3 s2", {"dwconv_bn_act"}, lambda: ops.dwconv_bn_act(x, dw_w, dw_b, 2, 1, "silu", **be)),
        ("dwconv_bn_act se_sums", {"dwconv_bn_act"},
         lambda: ops.dwconv_bn_act(x, dw_w, dw_b, 1, "same", "silu", se_sums=True, **be)),
        ("dwconv_bn_act tap-major strips+chunks", {"dwconv_bn_act"},
         lambda: ops.dwconv_bn_act(wide, tap_major, r(128), 1, 1, "silu", se_sums=True, **be)),
        ("dwconv_bn_act k7 s2", {"dwconv_bn_act"},
         lambda: ops.dwconv_bn_act(tall, r(96, 1, 7, 7), r(96), 2, 3, "silu", se_sums=True, **be)),
        ("dwconv_bn_act misaligned", {"dwconv_bn_act"},
         lambda: ops.dwconv_bn_act(off, r(64, 1, 3, 3), r(64), 1, 1, "silu", se_sums=True, **be)),
        ("dwconv_bn_act nchw", {"dwconv_bn_act"},
         lambda: ops.dwconv_bn_act(x.contiguous(), dw_w, dw_b, 2, 1, "silu", se_sums=True, **be)),
        ("channel_sums", {"channel_sums"}, lambda: ops.channel_sums(x, **be)),
        ("channel_sums tiles", {"channel_sums"}, lambda: ops.channel_sums(big, **be)),
        ("channel_sums tiles nchw", {"channel_sums"}, lambda: ops.channel_sums(big.contiguous(), **be)),
        ("se_excite", {"se_excite"}, lambda: ops.se_excite(sums, 1.0 / (hw * hw), w1, b1, w2, b2, **be)),
        ("se_scale", {"se_scale"}, lambda: ops.se_scale(x, scale, **be)),
        ("squeeze_excite", {"channel_sums", "se_excite", "se_scale"},
         lambda: ops.squeeze_excite(x, w1, b1, w2, b2, **be)),
        ("pointwise_conv scale+residual", {"pointwise_conv"},
         lambda: ops.pointwise_conv(x, r(c, c), r(c), "silu", scale=scale, residual=x, **be)),
        ("mbconv", {"mbconv", "mbconv_dw_se"},
         lambda: ops.mbconv(xb, blk["expand_w"], blk["expand_b"], blk["dw_w"], blk["dw_b"], 1, 2, blk["se_w1"],
                            blk["se_b1"], blk["se_w2"], blk["se_b2"], blk["proj_w"], blk["proj_b"], True, **be)),
        ("mbconv scale pass nchw", {"mbconv", "mbconv_dw_se"},
         lambda: ops.mbconv(xb.contiguous(), blk_scale["expand_w"], blk_scale["expand_b"], blk_scale["dw_w"],
                            blk_scale["dw_b"], 2, 2, blk_scale["se_w1"], blk_scale["se_b1"], blk_scale["se_w2"],
                            blk_scale["se_b2"], blk_scale["proj_w"], blk_scale["proj_b"], False, **be)),
    ] + (_cpu_packed_cases(ops, x, r, blk, xb, scale) if backend == "cpu" else [])


def _cpu_packed_cases(ops, x, r, blk, xb, scale):
    """The cpu backend's ops on 1x1 weights packed once (what its layers run)."""
    from effkernels.ops.activation import activation_  # noqa: PLC0415
    from effkernels.ops.conv_bn_act import conv_bn_act  # noqa: PLC0415
    from effkernels.ops.mbconv import pack_cpu  # noqa: PLC0415
    from effkernels.ops.pointwise_conv import pack_cpu as pack_pointwise  # noqa: PLC0415

    c = x.shape[1]
    w, b = r(c, c), r(c)
    packed = pack_cpu(blk["expand_w"], blk["proj_w"])

    def block(path):
        return ops.mbconv(xb, blk["expand_w"], blk["expand_b"], blk["dw_w"], blk["dw_b"], 1, 2, blk["se_w1"],
                          blk["se_b1"], blk["se_w2"], blk["se_b2"], blk["proj_w"], blk["proj_b"], True,
                          backend="cpu", packed=packed, path=path)

    return [("pointwise_conv packed", {"pack_pointwise_weight", "pointwise_conv_packed"},
             lambda: ops.pointwise_conv(x, w, b, "silu", scale=scale, residual=x, backend="cpu",
                                        packed=pack_pointwise(w))),
            ("mbconv packed fused", {"mbconv_packed"}, lambda: block("fused")),
            ("mbconv packed unfused", {"mbconv_packed"}, lambda: block("unfused")),
            ("activation_ silu", {"activation_"}, lambda: activation_(x.clone(), "silu", "cpu")),
            ("conv_bn_act stem", {"conv_bn_act"}, lambda: conv_bn_act(x[:, :3], r(19, 3, 3, 3), r(19), 2, 1, "silu", "cpu"))]


def registered_ops(backend) -> set:
    """The ops the backend serves: those of its namespace (with a kernel for its dispatch key)."""
    namespace, key = NAMESPACES[backend]
    names = [n for n in torch._C._dispatch_get_all_op_names() if n.startswith(namespace + "::")]
    return {n.split("::")[1] for n in names if key is None or torch._C._dispatch_has_kernel_for_dispatch_key(n, key)}


def check(backend) -> int:
    """Run every case on `backend`; the number of failures (None when the backend cannot run here)."""
    import effkernels  # noqa: PLC0415
    import effkernels.ops  # noqa: F401, PLC0415  (registers the Triton custom ops)

    device = "cpu" if backend == "cpu" else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print(f"sanitize_ops: {backend}: no GPU")
        return None
    ok, why = effkernels.backends_available()[backend]
    if not ok:
        print(f"sanitize_ops: {backend}: the backend is unavailable: {why}")
        return None
    failed = 0
    covered = set()
    for dtype in (torch.float32, torch.bfloat16):
        for name, reaches, fn in cases(dtype, device, backend):
            covered |= reaches
            try:
                out = fn()
                if device == "cuda":
                    torch.cuda.synchronize()
                outs = out if isinstance(out, tuple) else (out,)
                finite = all(bool(torch.isfinite(o).all()) for o in outs)
                print(f"sanitize_ops: {backend} {name} {str(dtype)[6:]}: {'ok' if finite else 'NON-FINITE output'}",
                      flush=True)
                failed += not finite
            except Exception as e:  # noqa: BLE001 (report every op, keep going)
                print(f"sanitize_ops: {backend} {name} {str(dtype)[6:]}: FAILED {type(e).__name__}: {e}", flush=True)
                failed += 1
    for op in sorted(registered_ops(backend) - covered):
        print(f"sanitize_ops: {backend} {op}: FAILED no case reaches it (add one to tools/sanitize_ops.py)")
        failed += 1
    return failed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="cuda,triton", help="comma list of cuda, triton, cpu (default cuda,triton)")
    args = ap.parse_args(argv)
    results = [check(b) for b in args.backends.split(",")]
    if all(r is None for r in results):
        return 2
    return 1 if any(results) else 0


if __name__ == "__main__":
    sys.exit(main())
