"""effkernels.convert: swap fused layers into an existing model, instance by instance.

    fast = effkernels.convert(model.eval())
    print(fast.effkernels_report)   # converted blocks, left blocks and why, depthwise convs torch still runs

A registry of handlers, one per (library, block type), one module per library: torchvision.py,
timm.py, lukemelas.py (see each module's docstring for its blocks). A module is recognised by its
library's class, or by its layout (its attributes), whatever package defines it. The walk
(_walk.py) replaces each recognised block, checks the replacement against the block on a random
input, and leaves (with the reason) any block the fused ops do not cover; it never raises for the
model's contents. A new block type is one decorated function:

    @register("mylib", "MyBlock", classes=("mylib.blocks.MyBlock",), layout=has_layout("conv_dw", "bn_dw"))
    def _my_block(block, ctx):        # ctx.backend, ctx.by_layout
        ...                           # raise Unsupported("why") to leave it
        return wrap(block, BlockSpec(...), ctx.backend)

Train mode: converted layers run the eager math of their unfolded submodules (a wrapped block runs
its own forward), so a converted model can still be trained or fine-tuned; eval mode runs the fused
ops with BN folded once (refolded whenever a parameter or buffer changes).
"""
from . import lukemelas, timm, torchvision  # noqa: F401  (registers their handlers)
from ._parts import wrap
from ._registry import HANDLERS, Context, Unsupported, has_layout, register
from ._report import ConvertReport, Converted, Left, TorchDepthwise
from ._walk import convert

__all__ = ["convert", "ConvertReport", "Converted", "Left", "TorchDepthwise", "register", "has_layout",
           "Unsupported", "Context", "wrap", "HANDLERS"]
