"""The practice agents: NPC, coach, intent, compliance, evaluator (built by the factory)."""
