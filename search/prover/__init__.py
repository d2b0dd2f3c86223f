"""Provers (spec 04): best-first proof search, a planner, agents sharing a proof cache."""
