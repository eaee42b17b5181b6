"""Which events become which posts on which account, and when: fan-out, pacing, budgets."""
