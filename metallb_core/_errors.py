"""The exceptions raised at the boundary: invalid configuration and invalid Services.

Expected allocation failures are *returned* values (see :mod:`metallb_core._outcomes`);
these two are raised, because the input itself cannot be used.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """An invalid configuration, with MetalLB's wording.

    ``kind`` and ``name`` say which object is at fault when the configuration came from
    Kubernetes objects (:func:`~metallb_core.parse_resources`), so a controller can put its
    Warning on that object; both are ``None`` otherwise.

    >>> err = ConfigError('duplicate definition of pool "a"', kind="IPAddressPool", name="a")
    >>> str(err), err.kind, err.name
    ('duplicate definition of pool "a"', 'IPAddressPool', 'a')
    """

    def __init__(self, message: str, *, kind: str | None = None, name: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.name = name

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
