"""The lab: what scenarios, load tests, conformance and the command stand on (a whole payout
world on loopback, a throwaway PostgreSQL, the bare forwarder, the machine probe, the live
page, Prometheus for a day). Nothing here imports the command (`switchlab/`)."""
