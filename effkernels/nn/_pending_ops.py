"""TEMPORARY: stands in for effkernels.ops.{dwconv_bn_act,squeeze_excite,pointwise_conv,mbconv} until
they land. backend "eager" runs effkernels.reference; any other backend raises. Removed when the ops land."""
from .. import reference
from ..backends import resolve


def _run(ref, x, backend, *args, **kwargs):
    name = resolve(backend, x.device)
    if name != "eager":
        raise NotImplementedError(f"backend: {name!r} kernels for {ref.__name__[:-4]} have not landed yet; use backend='eager'")
    return ref(x, *args, **kwargs)


def dwconv_bn_act(x, *args, backend="auto", **kwargs):
    return _run(reference.dwconv_bn_act_ref, x, backend, *args, **kwargs)


def squeeze_excite(x, *args, backend="auto", **kwargs):
    return _run(reference.squeeze_excite_ref, x, backend, *args, **kwargs)


def pointwise_conv(x, *args, backend="auto", **kwargs):
    return _run(reference.pointwise_conv_ref, x, backend, *args, **kwargs)


def mbconv(x, *args, backend="auto", **kwargs):
    return _run(reference.mbconv_ref, x, backend, *args, **kwargs)
