"""metallb-core's tests, a package so that every test module has one importable name.

Layout:

- ``tests/core``: the pure core (``metallb_core``): rules, MetalLB's own test cases,
  properties against :mod:`tests.support.naive_model`, purity.
- ``tests/announcers``: the Layer-2 announcer (frames, decisions, raw sockets, and the
  network-namespace lab of :mod:`tests.support.l2lab`).
- ``tests/adapter``: the Kubernetes adapter (``announcers.kubernetes``) against the API
  server emulator of :mod:`tests.support.emulator`, and the speaker lab.
- ``tests/support``: what the tests share, and the benchmarks reuse; no tests in it.

Run from the repository root: ``python -m pytest`` (pytest puts the root on ``sys.path``,
see ``pythonpath`` in ``pyproject.toml``); subprocesses get ``PYTHONPATH`` set to it.
"""
