"""The practice agents: customer (NPC), intent, coach, compliance and evaluator (built by the factory)."""
