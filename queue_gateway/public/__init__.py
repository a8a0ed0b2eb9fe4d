"""The gateway's public modules: the only part of ``queue_gateway`` that ``worker``, ``bots`` and the CLI import.

Each module here is a leaf: it imports nothing of ours outside this package (CI checks the rule with
import-linter, see ``[tool.importlinter]`` in ``pyproject.toml``):

- ``contract``  the wire contract: job messages, result uploads, API bodies, origins, error codes
- ``settings``  the settings base, the gateway client's and the queue's settings, the chat platforms' addresses
- ``topology``  the RabbitMQ topology that gateway and workers declare alike
- ``texts``     the message catalogue every person-facing sentence comes from
- ``redact``    secrets never reach a log line
- ``logs``      logging, configured once per process
- ``process``   the few process-global settings of the libraries we use, each set in one place
- ``supervise`` background tasks that survive outages, restarted when they crash, reported by /readyz
- ``runner``    run a service until SIGINT/SIGTERM
"""
