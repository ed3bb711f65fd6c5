"""switchlab: a payment-switch simulator and integration test harness (command line and wiring)."""
