"""ISO 20022 external status reason codes (ExternalStatusReason1Code) the scheme uses."""

from typing import Final

WRONG_ACCOUNT: Final = "AC01"  # account number does not exist at the creditor agent
CLOSED_ACCOUNT: Final = "AC04"
BLOCKED_ACCOUNT: Final = "AC06"
TIMEOUT_CREDITOR_AGENT: Final = "AB05"  # creditor agent did not answer in time
TIMEOUT_INSTRUCTED_AGENT: Final = "AB06"  # the switch itself could not finish in time
OFFLINE_CREDITOR_AGENT: Final = "AB08"  # signed off, or unreachable (circuit open)
TRANSACTION_FORBIDDEN: Final = "AG01"
PAYMENT_NOT_RECEIVED: Final = "AG09"  # pacs.028 about an id the switch never saw
NOT_ALLOWED_AMOUNT: Final = "AM02"  # above the scheme's cap for one transaction
NOT_ALLOWED_CURRENCY: Final = "AM03"
INSUFFICIENT_FUNDS: Final = "AM04"  # would breach the debtor's position limit
WRONG_AMOUNT: Final = "AM09"
INVALID_CONTROL_SUM: Final = "AM10"
INVALID_AMOUNT: Final = "AM12"  # not a positive whole number of dong
INVALID_NUMBER_OF_TRANSACTIONS: Final = "AM18"
NAME_MISMATCH: Final = "BE01"
DUPLICATE: Final = "DUPL"
DUPLICATE_MESSAGE_ID: Final = "DU01"  # a MsgId the sender used before, for other content
DUPLICATE_END_TO_END_ID: Final = "DU04"  # one EndToEndId twice in one message
DUPLICATE_INSTRUCTION_ID: Final = "DU05"  # one RtrId twice, or reused for another return
INVALID_FILE_FORMAT: Final = "FF01"
CREDITOR_DECEASED: Final = "MD07"
NOT_SPECIFIED: Final = "MS03"
WRONG_BIC: Final = "RC01"  # creditor agent unknown to the scheme
REGULATORY: Final = "RR04"

DESCRIPTIONS: Final[dict[str, str]] = {
    WRONG_ACCOUNT: "incorrect account number",
    CLOSED_ACCOUNT: "closed account",
    BLOCKED_ACCOUNT: "blocked account",
    TIMEOUT_CREDITOR_AGENT: "creditor agent did not answer in time",
    TIMEOUT_INSTRUCTED_AGENT: "transfer timed out at the switch",
    OFFLINE_CREDITOR_AGENT: "creditor agent offline",
    TRANSACTION_FORBIDDEN: "transaction forbidden",
    PAYMENT_NOT_RECEIVED: "payment not received",
    NOT_ALLOWED_AMOUNT: "amount above the scheme's limit for one transaction",
    NOT_ALLOWED_CURRENCY: "currency not allowed",
    INSUFFICIENT_FUNDS: "insufficient funds (position limit)",
    WRONG_AMOUNT: "wrong amount",
    INVALID_CONTROL_SUM: "control sum does not match the transactions",
    INVALID_AMOUNT: "amount is not a positive whole number of dong",
    INVALID_NUMBER_OF_TRANSACTIONS: "NbOfTxs does not match the transactions",
    NAME_MISMATCH: "name does not match the account",
    DUPLICATE: "duplicate end-to-end id",
    DUPLICATE_MESSAGE_ID: "message id already used for another message",
    DUPLICATE_END_TO_END_ID: "end-to-end id appears twice in the message",
    DUPLICATE_INSTRUCTION_ID: "return id appears twice or was used for another return",
    INVALID_FILE_FORMAT: "invalid file format",
    CREDITOR_DECEASED: "creditor deceased",
    NOT_SPECIFIED: "reason not specified",
    WRONG_BIC: "unknown creditor agent BIC",
    REGULATORY: "regulatory reason",
}
