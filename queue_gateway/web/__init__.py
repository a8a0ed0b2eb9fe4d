"""The web page and the admin dashboard the gateway serves at ``/`` and ``/admin`` (``DETECTBOT_WEB_UPLOADS``).

Plain HTML, CSS and ES-module JavaScript in ``static/`` (no build step, nothing fetched from the internet),
speaking only the gateway's own API; :mod:`queue_gateway.web.routes` serves them. The open page's browser
tokens are :class:`queue_gateway.auth.WebTokens`.
"""
