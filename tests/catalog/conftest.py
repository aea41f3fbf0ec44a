"""What the catalog tests share."""

# The smallest catalog file with one of each: a credit type, a feature, a plan, a pack.
MINIMAL = """
version: 1
credit_types:
- {code: credits, name: Credits}
features:
- {code: api_call, name: API call, credit_type: credits, credits_per_unit: "0.5"}
plans:
- code: starter
  name: Starter
  price: 29
  included_credits: {credits: 2000}
  features:
  - {feature: api_call, limit_per_period: 100}
credit_packs:
- {code: pack_1k, name: 1k credits, credit_type: credits, credits: 1000, price: 12}
"""
