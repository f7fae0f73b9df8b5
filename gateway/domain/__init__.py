"""The domain: money, accounts, identifiers, statuses, instructions and their events.

Pure values and rules; imports nothing else of the gateway.
"""
