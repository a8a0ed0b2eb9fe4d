"""The Discord bot (discord.py): thin slash and context-menu commands over ``bots.shared``."""
