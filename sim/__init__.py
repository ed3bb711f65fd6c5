"""A deterministic simulator of the switch: its core and real journal code, with participants,
network and time simulated, all randomness from one seed (TigerBeetle's VOPR, FoundationDB's
simulation testing). It stands beside the lab: it imports the switch and the protocol, and
nothing below the command imports it. `switchlab simulate --seed S --histories N`."""
