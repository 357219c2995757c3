"""Fixtures of the Layer-2 announcer tests.

* ``kit``: the kit namespace of :mod:`tests.support.l2lab` (``m4k-RUN``, veth pairs without
  addresses, for raw clients on their far ends), built once per module that asks for it and
  deleted afterwards, on failure too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import l2lab, netns


@pytest.fixture(scope="module")
def kit() -> Iterator[None]:
    netns.require("ip")
    l2lab.build_kit()
    try:
        yield
    finally:
        netns.delete_namespaces([l2lab.KIT_NS])
