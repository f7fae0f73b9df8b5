"""Status webhooks to business units: endpoint URL rules, signatures and the delivery worker."""
