"""Delivery of finished jobs back to the chats they came from: one small interface, one notifier per platform."""
