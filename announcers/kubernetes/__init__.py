"""The Kubernetes adapter: ``python -m announcers.kubernetes controller`` and ``speaker``.

Modules, from the outside in:

- :mod:`~announcers.kubernetes.client`: the only module importing the Kubernetes client
  (lightkube, async), behind the :class:`~announcers.kubernetes.client.KubeApi` Protocol.
- :mod:`~announcers.kubernetes.informer`: list-then-watch caches that survive API outages.
- :mod:`~announcers.kubernetes.convert` and :mod:`~announcers.kubernetes.status`: pure
  conversions, Kubernetes objects to core values and core outcomes to writes.
- :mod:`~announcers.kubernetes.controller`: allocation (``metallb_core.converge_all``) and
  its writes; :mod:`~announcers.kubernetes.leader`: Lease-based leader election;
  :mod:`~announcers.kubernetes.events`: deduplicated Events;
  :mod:`~announcers.kubernetes.metrics`: Prometheus metrics with MetalLB's names;
  :mod:`~announcers.kubernetes.logs`: JSON log lines.
- :mod:`~announcers.kubernetes.speaker`: announcement (``metallb_core.elect`` per Service,
  carried out by an :class:`~announcers.base.Announcer`);
  :mod:`~announcers.kubernetes.liveness`: one Lease per node, and who is alive;
  :mod:`~announcers.kubernetes.speaker_metrics`: the speaker's Prometheus metrics.

See ``docs/kubernetes.md`` (the controller) and ``docs/speaker.md`` (the speaker) for
installation and operation.
"""
