"""The process runtime kit every service runs on (it imports nothing else of ours; see ``[tool.importlinter]``):

- ``config``     the ``DETECTBOT_`` settings base (logging, tracing), settings shown safely, the secrets to redact
- ``entry``      what every ``main()`` shares: settings, logging, one runner, one sentence when it cannot run
- ``runner``     run a service until SIGINT/SIGTERM
- ``supervise``  background tasks that survive outages, restarted when they crash, reported by /readyz
- ``logs``       logging, configured once per process
- ``redact``     secrets never reach a log line
- ``tracing``    OpenTelemetry, when it is on: one trace per photo across the services
- ``process``    the few process-global settings of the libraries we use, each set in one place
- ``errors``     ``CannotStart``: the one sentence a service prints when a person has to fix something first
"""
