"""Prometheus metrics of membership: members by status, and the status changes seen.

A collector read at scrape time, registered on the node's registry (served at /metrics):

    meshkp_membership_members{status}       members this node sees, by status (itself included)
    meshkp_membership_events_total{event}   status changes this node saw, by the new status
    meshkp_swim_total{counter}              the SWIM core's counters (probes, suspicions, and the
                                            hostile news it refused: incarnation jumps, acks
                                            that name another member, truncated push-pulls)
    meshkp_swim_timer_failures_total        protocol ticks that raised (logged; the timer goes on)

The alerts of deploy/prometheus read both (a dead member, suspicions that keep coming).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from meshkp.membership.service import ChangeListener
from meshkp.swim.types import MemberInfo, Status


class _Membership(Protocol):
    timer_failures: int

    def counts(self) -> dict[str, int]: ...

    def swim_counters(self) -> dict[str, int]: ...

    def add_listener(self, listener: ChangeListener) -> None: ...


class MembershipMetrics(Collector):
    """Counts by status from the service, and a count of every change its listeners hear."""

    def __init__(self, membership: _Membership) -> None:
        self.membership = membership
        # Touched only on the event loop (listeners and the /metrics handler): no lock.
        self.events = {status.label: 0 for status in Status}
        membership.add_listener(self._changed)

    def _changed(self, member: MemberInfo, old: Status | None, new: Status) -> None:
        if old != new:
            self.events[new.label] += 1

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        members = GaugeMetricFamily("meshkp_membership_members",
                                    "Members this node sees, by status (itself included)",
                                    labels=["status"])
        for status, count in sorted(self.membership.counts().items()):
            members.add_metric([status], count)
        yield members
        events = CounterMetricFamily("meshkp_membership_events",
                                     "Member status changes this node saw, by the new status",
                                     labels=["event"])
        for event, count in sorted(self.events.items()):
            events.add_metric([event], count)
        yield events
        swim = CounterMetricFamily("meshkp_swim", "Counters of the SWIM protocol core, by name",
                                   labels=["counter"])
        for name, count in sorted(self.membership.swim_counters().items()):
            swim.add_metric([name], count)
        yield swim
        failures = CounterMetricFamily("meshkp_swim_timer_failures",
                                       "SWIM protocol ticks that raised (logged; the timer goes on)")
        failures.add_metric([], self.membership.timer_failures)
        yield failures
