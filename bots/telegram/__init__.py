"""The Telegram bot (python-telegram-bot): thin handlers over ``bots.shared``."""
