"""The switch: a NAPAS-style scheme that authenticates, validates, routes, journals and settles."""
