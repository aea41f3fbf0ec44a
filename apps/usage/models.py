"""UsageEvent and period usage counters (issue 4)."""
