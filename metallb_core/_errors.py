"""The exceptions raised at the boundary: invalid configuration and invalid Services.

Expected allocation failures are *returned* values (see :mod:`metallb_core._outcomes`);
these two are raised, because the input itself cannot be used.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """An invalid configuration, with MetalLB's wording.

    >>> str(ConfigError('duplicate definition of pool "a"'))
    'duplicate definition of pool "a"'
    """

    @property
    def message(self) -> str:
        """The text, as MetalLB words it."""
        return str(self)


class InvalidService(ValueError):
    """A Service (or service request) that cannot be read, with MetalLB's wording.

    >>> str(InvalidService('invalid spec.loadBalancerIP "abc"'))
    'invalid spec.loadBalancerIP "abc"'
    """

    @property
    def message(self) -> str:
        """The text, as MetalLB words it."""
        return str(self)
