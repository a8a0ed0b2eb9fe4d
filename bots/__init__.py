"""Chat front ends: ``bots.telegram`` and ``bots.discord`` on top of the platform-neutral ``bots.shared``."""
