"""From stored instruction to partner and back: the dispatcher, routing, status updates and the scheduler."""
