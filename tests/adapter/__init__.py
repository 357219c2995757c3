"""Tests of the Kubernetes adapter, and the API server emulator they run against.

``emulator.py`` holds :class:`ApiServerEmulator` (a kmock ``KubernetesEmulator`` extended to
behave like a kube-apiserver where the adapter can tell the difference) and its helpers;
``conftest.py`` exposes it as pytest fixtures. See the docstring of ``emulator.py``.
"""
