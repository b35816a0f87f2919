"""Handlers of the live-chat scenario (configs/live-chat)."""
