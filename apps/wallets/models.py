"""The ledger: Wallet, CreditGrant, LedgerEntry, Reservation (issue 4)."""
