"""Held-out routing evaluation: labelled requests over real text on this machine."""
