"""The gateway's published language: what ``worker``, ``bots`` and the CLI may import of the gateway, with the
runtime kit (``queue_gateway.runtime``).

Each module here imports nothing of ours outside this package but the runtime kit (CI checks the rule with
import-linter, see ``[tool.importlinter]`` in ``pyproject.toml``):

- ``contract``    the wire contract: job messages, result uploads, every HTTP body, origins, error codes
- ``client``      the HTTP client of the gateway's API (the bots, ``detectbot submit``) and its errors
- ``settings``    the gateway client's and the queue's settings, the chat platforms' addresses
- ``topology``    the RabbitMQ topology that gateway and workers declare alike
- ``texts``       the message catalogue every person-facing sentence comes from
- ``imagecheck``  the structure of a photo (format, size, decoding cost), read before anything decodes it
"""
