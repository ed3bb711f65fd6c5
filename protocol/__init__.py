"""The participant protocol: ISO 20022 messages over signed HTTP, shared by the switch and
every participant (a real bank would implement exactly this, nothing more)."""
