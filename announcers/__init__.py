"""Everything that touches the world, layered on :mod:`metallb_core`.

- :mod:`announcers.base`: the :class:`~announcers.base.Announcer` protocol.
- :mod:`announcers.mock`: an in-memory announcer for tests.
- :mod:`announcers.arp`: the Layer-2 announcer (ARP and NDP on raw sockets).
- :mod:`announcers.kubernetes`: the controller and speaker for a Kubernetes cluster.
"""
