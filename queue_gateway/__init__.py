"""The gateway: the HTTP API, intake and the outbox relay, the worker links, delivery to chats, stats.

The only package that imports ``db``. Its entry point is :func:`queue_gateway.main.main` (``python -m
queue_gateway`` or ``detectbot gateway``); ``create_app`` in :mod:`queue_gateway.app` builds everything.
Other packages import only :mod:`queue_gateway.public` (its published language) and :mod:`queue_gateway.runtime`
(the process runtime kit).
"""
