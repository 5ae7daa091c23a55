"""The fakes implement the ports: checked by mypy (``mypy tests/fakes.py tests/unit/test_fakes_conform.py``)
and here at run time for the methods each port names."""

from __future__ import annotations

import inspect

import pytest
from videodb_retry import ports
from videodb_retry.rules.budgets import Budgets

from tests import fakes

PAIRS = [
    (fakes.InMemoryLedger, ports.Ledger),
    (fakes.FakeDeadLetters, ports.DeadLetters),
    (fakes.FakeWorkflows, ports.Workflows),
    (fakes.FakeOutcomes, ports.OutcomeSink),
    (fakes.FakeBreakerStore, ports.BreakerStore),
    (fakes.FakeSwitch, ports.BreakerSwitch),
    (fakes.FakeAnnouncer, ports.Announcer),
    (fakes.InMemorySequenceStore, ports.SequenceStore),
    (fakes.InMemoryGate, ports.RequestGate),
    (fakes.FakeDeferrals, ports.Deferrals),
]

# Static conformance: mypy rejects these assignments if a fake drifts from its port.
_ledger: ports.Ledger = fakes.InMemoryLedger()
_dead_letters: ports.DeadLetters = fakes.FakeDeadLetters()
_workflows: ports.Workflows = fakes.FakeWorkflows()
_outcomes: ports.OutcomeSink = fakes.FakeOutcomes()
_store: ports.BreakerStore = fakes.FakeBreakerStore()
_switch: ports.BreakerSwitch = fakes.FakeSwitch()
_announcer: ports.Announcer = fakes.FakeAnnouncer()
_sequences: ports.SequenceStore = fakes.InMemorySequenceStore()
_gate: ports.RequestGate = fakes.InMemoryGate(Budgets())
_deferrals: ports.Deferrals = fakes.FakeDeferrals()


@pytest.mark.parametrize(("fake", "port"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_each_fake_has_its_ports_methods_with_the_same_parameters(fake: type, port: type) -> None:
    for name, method in inspect.getmembers(port, inspect.isfunction):
        if name.startswith("_"):
            continue
        assert hasattr(fake, name), f"{fake.__name__} lacks {name}"
        expected = list(inspect.signature(method).parameters)
        assert list(inspect.signature(getattr(fake, name)).parameters) == expected, name
