"""What the tests share (and the benchmarks reuse); holds no tests.

- :mod:`tests.support.netns`: network-namespace plumbing (``sh``, ``in_ns``, ``entered``,
  ``new_namespace``, ``run_token``, ``require``, ``Process``), one copy for every lab.
- :mod:`tests.support.l2lab`: the Layer-2 lab (a bridge, a client, two nodes) and raw-socket
  clients, for ``tests/announcers`` and ``benchmarks/l2_failover.py``.
- :mod:`tests.support.speaker_lab`: the speaker lab (emulator, controller and three speakers
  as processes), for ``tests/adapter/test_speaker_netns.py`` and
  ``benchmarks/speaker_failover.py``.
- :mod:`tests.support.name_server`: the HTTP server both labs run on each node (answers
  with the node's name).
- :mod:`tests.support.emulator`: the Kubernetes API server emulator (kmock, real HTTP).
- :mod:`tests.support.naive_model`: the naive allocation model the properties compare with.
- :mod:`tests.support.builders`: small builders of core values shared by ``tests/core``.
"""
