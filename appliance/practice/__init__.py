"""Practice sessions: the coordinator, the agents, the stage FSM and the tools they use."""
