"""A switch started with secrets short enough to guess says so (issue #26 friction 8: secrets
as short as `s1` were taken without a word); the lab's own are long enough to pass silently."""

from __future__ import annotations

import secrets

from lab.world import provision
from switch.config import parse_config, weak_secrets


def config(secret: str, admin_token: str, metrics_token: str | None = None) -> dict:
    return {"switch": {"admin_token": admin_token} | (
        {"metrics_token": metrics_token} if metrics_token else {}),
        "participants": [{"bic": "TRSYVNV1", "kind": "treasury", "secret": secret,
                          "inbound_url": "http://127.0.0.1:9/iso20022"}]}


def test_issue_26_short_secrets_and_tokens_are_each_named_with_why() -> None:
    warned = weak_secrets(parse_config(config("s1", "change-me-too", "m")))
    assert warned == [
        "participant TRSYVNV1's secret is 2 bytes; HMAC wants 32 random bytes or more "
        "(RFC 2104): anyone who guesses it signs as that participant",
        "admin_token is 13 characters; use 16 random characters or more: anyone who guesses "
        "it runs the admin API",
        "metrics_token is 1 character; use 16 random characters or more: anyone who guesses "
        "it reads every position"]


def test_issue_26_the_lab_s_provisioned_secrets_pass_without_a_warning() -> None:
    lab_secret = provision("hmac", ["TRSYVNV1"]).registered["TRSYVNV1"]["secret"]
    assert weak_secrets(parse_config(config(lab_secret, secrets.token_hex(16)))) == []
