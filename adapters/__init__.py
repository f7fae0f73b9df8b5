"""Built-in partner adapters (import name ``gateway_adapters``), each a pluggy plugin."""
