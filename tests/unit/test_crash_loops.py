from __future__ import annotations

from streams import metrics


def test_three_crashes_within_the_window_are_a_crash_loop() -> None:
    agent = "test-agent-loop"
    metrics.note_agent_crash(agent, 1000.0)
    metrics.note_agent_crash(agent, 1010.0)
    assert not [p for p in metrics.crash_looping_agents(1011.0) if agent in p]
    metrics.note_agent_crash(agent, 1020.0)
    assert [p for p in metrics.crash_looping_agents(1021.0) if agent in p]
    # Quiet for longer than the window: healthy again.
    assert not [p for p in metrics.crash_looping_agents(1020.0 + metrics.CRASH_LOOP_WINDOW_SECONDS + 100) if agent in p]
    assert metrics.AGENT_CRASHES.labels(agent)._value.get() == 3
