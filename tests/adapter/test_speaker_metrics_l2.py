"""The announcer's health and re-assertion counters, as the speaker exports them."""

from __future__ import annotations

from dataclasses import dataclass

from announcers.arp import Counters
from announcers.kubernetes.speaker_metrics import SpeakerMetrics


@dataclass
class FakeAnnouncer:
    """Counts as an L2Announcer does; ``healthy`` as the test sets it."""

    snapshot: Counters
    healthy: bool = True

    def counters(self) -> Counters:
        return self.snapshot


def test_restarts_reasserts_and_health_are_exported() -> None:
    announcer = FakeAnnouncer(Counters(reasserts=3, thread_restarts=2), healthy=False)
    metrics = SpeakerMetrics(node="n1")
    metrics.watch_announcer(announcer)
    assert metrics.value("metallb_core_speaker_reasserts_total") == 3.0
    assert metrics.value("metallb_core_speaker_responder_restarts_total") == 2.0
    assert metrics.value("metallb_core_speaker_responder_healthy") == 0.0
    announcer.healthy = True
    assert metrics.value("metallb_core_speaker_responder_healthy") == 1.0


def test_an_announcer_without_counters_reports_healthy_and_zero() -> None:
    metrics = SpeakerMetrics(node="n1")
    metrics.watch_announcer(object())
    assert metrics.value("metallb_core_speaker_responder_restarts_total") == 0.0
    assert metrics.value("metallb_core_speaker_responder_healthy") == 1.0
