"""Development tools, not shipped with the product: the offline Stripe and the demo data that
`make run` uses. Only the local settings install them (config/settings/local.py); they may
import any app, and no app imports them (.importlinter)."""
