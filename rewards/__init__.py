"""Reward functions: API, built-ins (math_answer, format rules, legal_terms), safe execution."""
