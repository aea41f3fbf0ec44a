"""Stripe through dj-stripe (issue 7)."""
