"""The ``detectbot`` command: one CLI that wires and runs every service. Nothing imports it."""
