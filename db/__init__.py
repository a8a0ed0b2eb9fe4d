"""Persistence for detectbot: models, engine, migrations and the guarded job transitions.

Only ``queue_gateway`` imports this package.
"""
