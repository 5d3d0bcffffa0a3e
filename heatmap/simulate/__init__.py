"""Simulated store day: people, phones, radio, boards; writes real capture files."""
