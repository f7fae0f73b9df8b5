"""Finance reads and exports the books: balances, trial balance, backfill, period close, reversals, GL export."""
