"""The handler registry: one handler per (library, block type), registered by decorator.

A handler turns a source block into its fused replacement, or raises Unsupported(reason) to leave
it. convert() finds a module's handler by its class first (the library's own classes, listed at
registration), then by layout: each handler may give a predicate on a module's attributes, so a
block with a library's layout is recognised whatever package defines it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

from torch import nn


class Unsupported(Exception):
    """Raised by a handler to leave a block as it is; the message is the report's reason."""


class Context(NamedTuple):
    """What a handler gets besides the block: the backend of the fused layers, and whether the block
    was recognised by layout (then only the generic wrapper is built, whose train mode runs the
    block's own forward) rather than by its library's class."""
    backend: str
    by_layout: bool


@dataclass(frozen=True)
class Handler:
    library: str
    block: str
    convert: Callable[[nn.Module, Context], nn.Module]
    classes: tuple
    layout: Optional[Callable[[nn.Module], bool]]

    @property
    def name(self) -> str:
        return f"{self.library} {self.block}"


HANDLERS: dict = {}   # (library, block type) -> Handler
_BY_CLASS: dict = {}  # "module.QualName" of a library class -> Handler


def register(library: str, block: str, *, classes=(), layout: Optional[Callable[[nn.Module], bool]] = None):
    """Register the decorated function as the handler of `block` from `library`.

    classes: the library's module-qualified class names for this block (matched exactly).
    layout: a predicate recognising the block by its attributes, whatever its class; handlers whose
    predicates could both match one module must be told apart by them (none is tried after a match).
    """
    def deco(fn):
        key = (library, block)
        if key in HANDLERS:
            raise ValueError(f"effkernels.convert: a handler for {library} {block} is already registered")
        handler = Handler(library, block, fn, tuple(classes), layout)
        HANDLERS[key] = handler
        for cls in handler.classes:
            _BY_CLASS[cls] = handler
        return fn
    return deco


def qualname(m) -> str:
    return f"{type(m).__module__}.{type(m).__qualname__}"


def find_handler(m: nn.Module):
    """(handler, by_layout) for a recognised module, else None."""
    handler = _BY_CLASS.get(qualname(m))
    if handler is not None:
        return handler, False
    for handler in HANDLERS.values():
        if handler.layout is not None and handler.layout(m):
            return handler, True
    return None


def has_layout(*names: str, absent=()) -> Callable[[nn.Module], bool]:
    """A layout predicate: the module has every attribute in `names` and none in `absent`."""
    def layout(m):
        return all(hasattr(m, n) for n in names) and not any(hasattr(m, n) for n in absent)
    return layout
