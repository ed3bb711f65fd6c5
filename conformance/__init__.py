"""The conformance suite: a bank points switchlab at its own endpoint and gets a verdict per
case it can hand to the scheme (`switchlab conformance`, docs/conformance.md).

It sits at the lab's level: it starts a switch and the counterpart participants on this
machine, puts recording relays between the switch and the bank under test, drives the bank
through the switch and as the scheme itself, and checks every message the bank sends. Nothing
below the lab imports it.
"""
