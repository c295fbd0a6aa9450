"""Probes of gokart behaviours that kart must match, run once per implementation in its own process."""
