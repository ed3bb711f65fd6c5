"""ISO 20022 external status reason codes (ExternalStatusReason1Code) the scheme uses."""

from typing import Final

WRONG_ACCOUNT: Final = "AC01"  # account number does not exist at the creditor agent
CLOSED_ACCOUNT: Final = "AC04"
BLOCKED_ACCOUNT: Final = "AC06"
# "Invalid account currency": the creditor's account is not in the scheme's currency (VND).
INVALID_ACCOUNT_CURRENCY: Final = "AC09"
TIMEOUT_CREDITOR_AGENT: Final = "AB05"  # creditor agent did not answer in time
TIMEOUT_INSTRUCTED_AGENT: Final = "AB06"  # the switch itself could not finish in time
OFFLINE_CREDITOR_AGENT: Final = "AB08"  # signed off, or unreachable (circuit open)
TRANSACTION_FORBIDDEN: Final = "AG01"
# "Transaction type not supported": an on-us transfer, the debtor's agent paying an account it
# holds itself. The scheme clears between participants only; the bank books it in-house.
NOT_SUPPORTED: Final = "AG03"
PAYMENT_NOT_RECEIVED: Final = "AG09"  # pacs.028 about an id the switch never saw
NOT_ALLOWED_AMOUNT: Final = "AM02"  # above the scheme's cap for one transaction
NOT_ALLOWED_CURRENCY: Final = "AM03"
INSUFFICIENT_FUNDS: Final = "AM04"  # would breach the debtor's position limit
WRONG_AMOUNT: Final = "AM09"
INVALID_CONTROL_SUM: Final = "AM10"
INVALID_AMOUNT: Final = "AM12"  # not a positive whole number of dong
INVALID_NUMBER_OF_TRANSACTIONS: Final = "AM18"
NAME_MISMATCH: Final = "BE01"
# The citizen id given is not the account holder's (acmt.024 Rsn): "creditor identification
# code invalid".
CITIZEN_ID_MISMATCH: Final = "BE17"
# A citizen id (NIDN, the scheme's account proxy) with no active payout account in the
# switch's directory, or no valid citizen id at all: "account proxy invalid", as SEPA Instant
# and FedNow use it for proxies.
NO_LINKED_ACCOUNT: Final = "BE23"
# The population register's answers to a ministry's list (register/citizens.py): ISO's
# "unknown end customer" for a CCCD the register does not hold; ISO has no code for a name or
# birth date that differs from a population register's, so switchlab's own C6xx (four
# characters, as the external codes are) say it, apart from the bank's BE01.
UNKNOWN_CITIZEN: Final = "BE06"
REGISTER_NAME_MISMATCH: Final = "C601"
REGISTER_BIRTH_DATE_MISMATCH: Final = "C602"
# "Element content formally incorrect": a TxId in the namespace the switch reserves for the
# TxIds it forwards under (protocol/ids.py FORWARD_TX_PREFIX; attacker report item 1).
RESERVED_TX_ID: Final = "CH16"
REQUIRED_ELEMENT_MISSING: Final = "CH21"  # OrgnlTxId needed: several of yours share the id
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
    INVALID_ACCOUNT_CURRENCY: "the account is not in VND",
    TIMEOUT_CREDITOR_AGENT: "creditor agent did not answer in time",
    TIMEOUT_INSTRUCTED_AGENT: "transfer timed out at the switch",
    OFFLINE_CREDITOR_AGENT: "creditor agent offline",
    TRANSACTION_FORBIDDEN: "transaction forbidden",
    NOT_SUPPORTED: "on-us transfer (debtor agent is the creditor agent): not cleared by the "
                   "scheme, book it in-house",
    PAYMENT_NOT_RECEIVED: "payment not received",
    NOT_ALLOWED_AMOUNT: "amount above the scheme's limit for one transaction",
    NOT_ALLOWED_CURRENCY: "currency not allowed",
    INSUFFICIENT_FUNDS: "insufficient funds (position limit)",
    WRONG_AMOUNT: "wrong amount",
    INVALID_CONTROL_SUM: "control sum does not match the transactions",
    INVALID_AMOUNT: "amount is not a positive whole number of dong",
    INVALID_NUMBER_OF_TRANSACTIONS: "NbOfTxs does not match the transactions",
    NAME_MISMATCH: "name does not match the account",
    CITIZEN_ID_MISMATCH: "citizen id is not the account holder's",
    NO_LINKED_ACCOUNT: "no payout account linked to the citizen id (NIDN)",
    UNKNOWN_CITIZEN: "citizen id unknown to the population register",
    REGISTER_NAME_MISMATCH: "name is not the one in the population register",
    REGISTER_BIRTH_DATE_MISMATCH: "birth date is not the one in the population register",
    RESERVED_TX_ID: "TxId starts with SWT, which the switch reserves for its own TxIds",
    REQUIRED_ELEMENT_MISSING: "OrgnlTxId required: several of your transfers have this "
                              "end-to-end id",
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

# The same reasons in Vietnamese, for lists people read: the post office's cash list and the
# list of deceased beneficiaries sent back to the ministry.
DESCRIPTIONS_VI: Final[dict[str, str]] = {
    WRONG_ACCOUNT: "số tài khoản không đúng",
    CLOSED_ACCOUNT: "tài khoản đã đóng",
    BLOCKED_ACCOUNT: "tài khoản bị phong tỏa",
    INVALID_ACCOUNT_CURRENCY: "tài khoản không phải bằng đồng Việt Nam",
    TIMEOUT_CREDITOR_AGENT: "ngân hàng nhận không trả lời kịp thời",
    TIMEOUT_INSTRUCTED_AGENT: "giao dịch quá hạn tại hệ thống chuyển mạch",
    OFFLINE_CREDITOR_AGENT: "ngân hàng nhận ngừng kết nối",
    TRANSACTION_FORBIDDEN: "giao dịch không được phép",
    NOT_SUPPORTED: "giao dịch nội bộ ngân hàng, không thanh toán qua hệ thống chuyển mạch",
    NOT_ALLOWED_AMOUNT: "số tiền vượt hạn mức một giao dịch",
    NOT_ALLOWED_CURRENCY: "loại tiền không được phép",
    INSUFFICIENT_FUNDS: "không đủ hạn mức thanh toán",
    INVALID_AMOUNT: "số tiền không hợp lệ",
    NAME_MISMATCH: "tên không khớp với chủ tài khoản",
    CITIZEN_ID_MISMATCH: "số CCCD không phải của chủ tài khoản",
    NO_LINKED_ACCOUNT: "chưa liên kết tài khoản nhận an sinh xã hội với số CCCD",
    UNKNOWN_CITIZEN: "số CCCD không có trong Cơ sở dữ liệu quốc gia về dân cư",
    REGISTER_NAME_MISMATCH: "họ tên không khớp với Cơ sở dữ liệu quốc gia về dân cư",
    REGISTER_BIRTH_DATE_MISMATCH: "ngày sinh không khớp với Cơ sở dữ liệu quốc gia về dân cư",
    DUPLICATE: "trùng mã giao dịch",
    INVALID_FILE_FORMAT: "sai định dạng",
    CREDITOR_DECEASED: "người thụ hưởng đã qua đời",
    NOT_SPECIFIED: "không rõ lý do",
    WRONG_BIC: "ngân hàng nhận không thuộc hệ thống",
    REGULATORY: "lý do pháp lý",
}
