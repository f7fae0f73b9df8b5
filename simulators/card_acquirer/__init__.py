"""card_acquirer simulator (work in progress)."""
