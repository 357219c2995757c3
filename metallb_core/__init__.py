"""metallb_core: MetalLB's Layer-2 allocation decisions as pure functions.

The public API is documented in ``docs/api.md``. Nothing here performs I/O, reads a clock,
the environment or randomness, or mutates an argument.
"""

from metallb_core._l2 import announcing_node

__all__ = ["announcing_node"]
