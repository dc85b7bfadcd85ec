"""Scripted agents: predicted play, deviations, coalition controllers."""
