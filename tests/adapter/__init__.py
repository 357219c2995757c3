"""Tests of the Kubernetes adapter (``announcers.kubernetes``): controller and speaker.

They run against the API server emulator of :mod:`tests.support.emulator` (a kmock
``KubernetesEmulator`` extended to behave like a kube-apiserver where the adapter can tell
the difference); ``conftest.py`` exposes it as pytest fixtures. ``controller_kit.py`` and
``speaker_kit.py`` hold the builders and helpers the tests here share.

The directory is not named ``kubernetes``: a test package of that name would shadow the
official Kubernetes client for anything imported after it.
"""
