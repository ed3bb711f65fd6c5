"""What every message codec shares: limits, errors, escaping, and the one-pass field reader.

Reading cost is the point. Touching a parsed tree from Python costs ~0.5 µs per element (each
is a new proxy object and a new tag string), 20-25 µs for a pacs.008 transaction, three times
the parse itself. So each codec declares the fields it reads as paths, and one libxslt pass,
in C, writes them all out as text records: ~8 µs per transaction (one XPath per field, ~10 µs
fixed), whatever the size of the message. xsdata/pyiso20022 bindings (~250 µs per
transaction) serve only in tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, ClassVar, Generic, TypeVar

from lxml import etree

from protocol.messages import MAX_NAME_CHARS, Document  # noqa: F401 (the codecs' import)
from protocol.reasons import INVALID_FILE_FORMAT

MAX_MESSAGE_BYTES: int = 128 * 1024 * 1024
MAX_TRANSACTIONS_PER_MESSAGE: int = 100_000
ENVELOPE_NS = "urn:switchlab:envelope:1"
HEAD_NS = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
ISO_NS_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
MAX_INFO_CHARS = 105  # Max105Text: AddtlInf

# The AppHdr fields every message starts with; required, in this order.
HEADER_FIELDS = ("Fr/FIId/FinInstnId/BICFI", "To/FIId/FinInstnId/BICFI", "BizMsgIdr",
                 "MsgDefIdr", "CreDt")


class CodecError(Exception):
    """Bad input. .reason_code is an ISO reason (FF01 for format/schema problems), str(e) a
    readable sentence naming the element."""

    reason_code: str

    def __init__(self, message: str, reason_code: str = INVALID_FILE_FORMAT) -> None:
        super().__init__(message)
        self.reason_code = reason_code


# ---- writing -------------------------------------------------------------------------------

# What needs escaping in text and double-quoted attributes (\r, or a parser turns it into \n),
# and what XML 1.0 cannot carry at all.
_SPECIAL = re.compile('[&<>"\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})


def esc(value: str) -> str:
    """`value` as XML text or attribute content; refuses characters XML 1.0 cannot carry,
    which could only make the receiver reject the whole message."""
    if value.isalnum() or _SPECIAL.search(value) is None:  # isalnum: fast path for ids
        return value
    illegal = _ILLEGAL.search(value)
    if illegal:
        raise CodecError(f"text {value!r} holds U+{ord(illegal.group()):04X}, which XML 1.0 "
                         "cannot carry")
    return value.translate(_ESCAPES)


def escaped(values: tuple[str, ...]) -> tuple[str, ...]:
    """Each of `values` as `esc` writes it, looked at in one pass: the common case (nothing to
    escape in any of them) costs one search over their concatenation, not one call a value.
    Raises CodecError as `esc` does."""
    if _SPECIAL.search("".join(values)) is None:
        return values
    return tuple(map(esc, values))


def timestamp(value: datetime) -> str:
    """ISODateTime in UTC with Z, to the millisecond (naive values are taken as local)."""
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def agent(tag: str, bic: str) -> str:
    """A BranchAndFinancialInstitutionIdentification6 by BIC; nothing for an unknown BIC,
    which only optional agents can be (an empty BICFI would break the schema)."""
    return f"<{tag}><FinInstnId><BICFI>{esc(bic)}</BICFI></FinInstnId></{tag}>" if bic else ""


def original_group(msg_id: str | None, msg_type: str) -> str:
    """OrgnlGrpInf naming the original message, or nothing when it is not known."""
    if not msg_id:
        return ""
    return (f"<OrgnlGrpInf><OrgnlMsgId>{esc(msg_id)}</OrgnlMsgId>"
            f"<OrgnlMsgNmId>{msg_type}</OrgnlMsgNmId></OrgnlGrpInf>")


def reason(tag: str, code: str | None, text: str | None, originator_bic: str | None = None
           ) -> str:
    """StsRsnInf/RtrRsnInf with an ISO reason code and, optionally, who gave it (Orgtr, by
    BIC) and its explanation."""
    if not code:
        return ""
    by = (f"<Orgtr><Id><OrgId><AnyBIC>{esc(originator_bic)}</AnyBIC></OrgId></Id></Orgtr>"
          if originator_bic else "")
    info = f"<AddtlInf>{esc(text[:MAX_INFO_CHARS])}</AddtlInf>" if text else ""
    return f"<{tag}>{by}<Rsn><Cd>{esc(code)}</Cd></Rsn>{info}</{tag}>"


# ---- reading scalars -----------------------------------------------------------------------


def parse_timestamp(text: str, where: str) -> datetime:
    """An ISODateTime; one without a zone is taken as UTC, the scheme's clock."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CodecError(f"{where} is not an ISO date-time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


MAX_AMOUNT_DIGITS = 18  # totalDigits 18 of ActiveCurrencyAndAmount


def whole(text: str) -> int:
    """The whole dong an amount as written stands for, or 0 when it is not 1 to 18 ASCII
    digits ("1.5", "-5", "1E+6", "١٢"): the switch then judges the text itself. No
    arithmetic on the text, so no input can make it slow."""
    if len(text) <= MAX_AMOUNT_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return 0


MAX_NUMBER_DIGITS = 15  # Max15NumericText: NbOfTxs, ElctrncSeqNb


def number(text: str, where: str) -> int:
    """A count or sequence number (Max15NumericText), which the codec itself relies on."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_NUMBER_DIGITS:
        raise CodecError(f"{where} is not a number of 1 to {MAX_NUMBER_DIGITS} digits: "
                         f"{text[:40]!r}")
    return int(text)


# ---- what the schemas allow in each text element -------------------------------------------

# Maximum characters by element name, as the ISO 20022 schemas type them (Max35Text ids,
# Max34Text account ids, Max140Text names, Max105Text AddtlInf, ExternalCode of 1-4).
MAX_CHARS_BY_ELEMENT = {
    "MsgId": 35, "BizMsgIdr": 35, "MsgDefIdr": 35, "EndToEndId": 35, "TxId": 35, "RtrId": 35,
    "OrgnlMsgId": 35, "OrgnlEndToEndId": 35, "OrgnlTxId": 35, "NtryRef": 35, "OrgnlMsgNmId": 35,
    "OrgnlId": 35,
    "Nm": 140, "Ustrd": 140, "AddtlInf": 105, "Cd": 4, "TxSts": 4, "GrpSts": 4,
}
_BIC_ELEMENTS = ("BICFI", "AnyBIC")
_BIC = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")  # BICFIDec2014Identifier


# The ids among them: a value of only spaces is no id ("   " was taken and settled as an
# end-to-end id), refused like an empty one.
ID_ELEMENTS = frozenset({"MsgId", "BizMsgIdr", "EndToEndId", "TxId", "RtrId", "OrgnlMsgId",
                         "OrgnlEndToEndId", "OrgnlTxId", "NtryRef", "OrgnlId"})


def _rules(paths: tuple[str, ...]) -> tuple[tuple[int, int, bool], ...]:
    """(field index, maximum characters, is an id) for each path whose element the schema
    bounds; a BICFI's bound is its pattern, marked -1."""
    rules = []
    for index, path in enumerate(paths):
        element = path.split("/")[-1].split("[")[0]
        if element in _BIC_ELEMENTS:
            rules.append((index, -1, False))
        elif element in MAX_CHARS_BY_ELEMENT:
            rules.append((index, MAX_CHARS_BY_ELEMENT[element], element in ID_ELEMENTS))
    return tuple(rules)


def _broken_rule(values: list[str], rules: tuple[tuple[int, int, bool], ...]
                 ) -> tuple[int, str] | None:
    for index, limit, is_id in rules:
        value = values[index]
        if limit < 0:
            if value and not _BIC.fullmatch(value):
                return index, f"{value[:40]!r} is not a BIC"
        elif len(value) > limit:
            return index, f"is {len(value):,} characters; the schema allows {limit}"
        elif is_id and value and value.isspace():
            return index, "is blank (only spaces): an id needs at least one other character"
    return None


# ---- one message definition ----------------------------------------------------------------

D = TypeVar("D", bound=Document)

# The separator after each field in the flattened text (the items' fields follow the group's,
# a fixed number each, so one split and slices give the records). A private-use character
# never appears in real messages; if one does, the count check in `MessageCodec.read` sees it
# and the message is read field by field instead, so crafted text can never forge a field or
# a record.
_FIELD = "\ue000"
# A message of at most this many items is read by a walk planned for its shape, not the
# libxslt pass, whose fixed cost (~20 µs) is most of the reading of an instant transfer and
# of a creditor's answer to a few coalesced forwards (at 8 items the two cost the same).
MAX_WALKED_ITEMS = 4
MAX_SHAPES = 64  # planned shapes kept per message definition; past them, the libxslt pass
MAX_WALKED_ELEMENTS = 256  # a one-transaction pacs.008 has ~60; a shape is a key of this size
_NAME = re.compile(r"(?<![@\w])(?=[A-Z])")  # where an ISO 20022 element name starts


# Elements on the codecs' field paths that the ISO 20022 schemas allow more than once
# (maxOccurs > 1; tests/unit/test_codec.py checks it against protocol/schemas/). A field
# through one of them is the first match across all of them, as the sender may order them.
REPEATABLE_ELEMENTS = frozenset({"AddtlInf", "Bal", "NtryDtls", "OrgnlGrpInfAndSts", "Othr",
                                 "RtrRsnInf", "Stmt", "StsRsnInf", "TxDtls", "Ustrd"})


def _xpath(path: str, prefix: str) -> str:
    """A field path ("Bal[Tp/CdOrPrtry/Cd='OPBD']/Amt") as XPath with namespace prefixes."""
    parts = path.split("'")
    parts[::2] = [_NAME.sub(f"{prefix}:", part) for part in parts[::2]]
    return "'".join(parts)


def path_steps(path: str) -> list[str]:
    """A field path's steps: split at each "/" outside a predicate."""
    steps, depth, start = [], 0, 0
    for index, char in enumerate(path):
        depth += (char == "[") - (char == "]")
        if char == "/" and not depth:
            steps.append(path[start:index])
            start = index + 1
    steps.append(path[start:])
    return steps


def _field_xpath(path: str, prefix: str) -> str:
    """A field's XPath, each step the schema allows once taken at its first match ("[1]"),
    and so is the last element step (its first match in document order is the field's value
    either way). The same value as the plain path for any message the schema allows, read
    ~25 % faster by libxslt, which otherwise collects every match of each step (a bulk
    pacs.008's pass: 7.1 to 5.5 µs a transaction). Every reader of fields uses it, so the
    libxslt pass, the walk and the slow path agree on any message."""
    *inner, last = path_steps(path)
    steps = [f"{step}[1]" if "[" not in step and step not in REPEATABLE_ELEMENTS else step
             for step in inner]
    steps.append(last if last.startswith("@") or "[" in last else f"{last}[1]")
    return _xpath("/".join(steps), prefix)


def _fields(spec: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Paths without their "!" marks, and the indexes of the required ("!") ones."""
    paths = tuple(path.lstrip("!") for path in spec)
    return paths, tuple(i for i, path in enumerate(spec) if path.startswith("!"))


def _getter(indexes: tuple[int, ...]) -> Callable[[list[str]], tuple[str, ...]]:
    """values[i] for each index, always as a tuple (an itemgetter of one index is not)."""
    if len(indexes) == 1:
        index = indexes[0]
        return lambda values: (values[index],)
    return itemgetter(*indexes)


# Where a field's value is: (position in document order, None) for a text-only element's
# text (-1: absent), or (position of the context element, the field's string() XPath).
_Step = tuple[int, etree.XPath | None]
_Plan = tuple[list[_Step], list[_Step], list[list[_Step]]]


def _walked(elements: list[etree._Element], steps: list[_Step]) -> list[str]:
    values = []
    for index, reader in steps:
        if reader is not None:
            values.append(reader(elements[index]))
        elif index < 0:
            values.append("")
        else:
            values.append(elements[index].text or "")
    return values


class MessageCodec(Generic[D]):
    """One message definition and version: its namespace, how to write and read it.

    A subclass declares the root element, the group fields, the repeated element and its
    fields (paths from the root element; "!" marks required ones, refused with FF01 when
    missing or empty), then writes `body` and `make`. Adding pacs.008.001.10 is one more
    subclass registered with `default = False` until the scheme moves to it.
    """

    msg_def_id: ClassVar[str]
    document_type: ClassVar[type[Document]]
    root: ClassVar[str]
    group_fields: ClassVar[tuple[str, ...]]
    items: ClassVar[str]  # path of the repeated element, e.g. "CdtTrfTxInf" or "Stmt/Ntry"
    item_fields: ClassVar[tuple[str, ...]]
    min_items: ClassVar[int] = 0  # as the schema says
    default: ClassVar[bool] = True  # the version encode writes for its document type

    def __init__(self) -> None:
        self.namespace = ISO_NS_PREFIX + self.msg_def_id
        ns = f"{{{self.namespace}}}"
        self.root_tag = ns + self.root
        *parents, item = self.items.split("/")
        self._item_parents = tuple(ns + step for step in parents)
        self._item_tag = ns + item
        self._group_paths, self._group_required = _fields(self.group_fields)
        self._item_paths, self._item_required = _fields(self.item_fields)
        self._required_values = _getter(self._item_required)
        self._header_rules = _rules(HEADER_FIELDS)
        self._group_rules = _rules(self._group_paths)
        self._item_rules = _rules(self._item_paths)
        self._flatten = self._stylesheet()
        self._slow_readers: tuple[list[etree.XPath], ...] | None = None
        self._plans: dict[tuple[tuple[str, int], ...], _Plan | None] = {}

    # writing

    def build(self, document: D) -> str:
        """The Document element, as XML text."""
        return (f'<Document xmlns="{self.namespace}"><{self.root}>{self.body(document)}'
                f"</{self.root}></Document>")

    def body(self, document: D) -> str:
        """The content of the root element."""
        raise NotImplementedError

    # reading

    def make(self, group: list[str], items: list[list[str]]) -> D:
        """The dataclass from the group's and each item's field values, required ones set."""
        raise NotImplementedError

    def count_items(self, message: etree._Element) -> int:
        """How many repeated elements the root element `message` holds."""
        parent = self._items_parent(message)
        return 0 if parent is None else sum(1 for _ in parent.iterchildren(self._item_tag))

    def _items_parent(self, message: etree._Element) -> etree._Element | None:
        parent: etree._Element | None = message
        for tag in self._item_parents:
            parent = next(parent.iterchildren(tag), None)  # type: ignore[union-attr]
            if parent is None:
                return None
        return parent

    def read(self, envelope: etree._Element, message: etree._Element, item_count: int
             ) -> tuple[list[str], list[str], list[list[str]]]:
        """AppHdr, group and item field values, from one libxslt pass over the envelope.

        The pass writes a fixed number of separators for `item_count` items; any more means
        some text holds a separator character, and then each field is read on its own.
        A message of at most MAX_WALKED_ITEMS items is read by `_walk` when it can be.
        """
        if item_count <= MAX_WALKED_ITEMS:
            walked = self._walk(envelope, message)
            if walked is not None:
                return walked
        values = bytes(self._flatten(envelope.getroottree())).decode().split(_FIELD)
        group_end = len(HEADER_FIELDS) + len(self._group_paths)
        width = len(self._item_paths)
        end = group_end + item_count * width
        if len(values) != end + 1:  # each field ends with a separator: "" after the last
            return self._read_slowly(envelope[0], message)
        return (values[:len(HEADER_FIELDS)], values[len(HEADER_FIELDS):group_end],
                [values[start:start + width] for start in range(group_end, end, width)])

    def check(self, header: list[str], group: list[str], items: list[list[str]]) -> None:
        """Refuse (FF01) the first required field that is missing or empty, and the first
        text the schema does not allow there (too long, a BIC that is none)."""
        for value, path in zip(header, HEADER_FIELDS, strict=True):
            if not value:
                raise CodecError(f"AppHdr/{path} is missing or empty")
        broken = _broken_rule(header, self._header_rules)
        if broken:
            raise CodecError(f"AppHdr/{HEADER_FIELDS[broken[0]]} {broken[1]}")
        for i in self._group_required:
            if not group[i]:
                raise CodecError(f"{self.root}/{self._group_paths[i]} is missing or empty")
        broken = _broken_rule(group, self._group_rules)
        if broken:
            raise CodecError(f"{self.root}/{self._group_paths[broken[0]]} {broken[1]}")
        if len(items) < self.min_items:
            raise CodecError(f"{self.root} holds no {self.items}")
        if len(items) > 1 and self._items_pass(items):  # one item: the row loop is cheaper
            return
        required = self._required_values
        rules = self._item_rules
        for position, values in enumerate(items, start=1):
            if not all(required(values)):
                i = next(i for i in self._item_required if not values[i])
                raise CodecError(f"{self.items}[{position}]/{self._item_paths[i]} is missing "
                                 "or empty")
            broken = _broken_rule(values, rules)
            if broken:
                raise CodecError(f"{self.items}[{position}]/{self._item_paths[broken[0]]} "
                                 f"{broken[1]}")

    def _items_pass(self, items: list[list[str]]) -> bool:
        """Whether every item keeps every rule, judged a column at a time (loops in C: a
        bulk file's items cost a third of judging them row by row). False sends `check` to
        the row-by-row loop, which names the first item and field that break one."""
        if not items:
            return True
        columns = list(zip(*items, strict=True))
        if not all(all(columns[i]) for i in self._item_required):
            return False
        for index, limit, is_id in self._item_rules:
            column = columns[index]
            if limit < 0:  # a few BICs repeated across the file: each distinct one once
                if not all(_BIC.fullmatch(bic) for bic in set(column) if bic):
                    return False
            elif max(map(len, column)) > limit or (is_id and any(map(str.isspace, column))):
                return False
        return True

    def _walk(self, envelope: etree._Element, message: etree._Element
              ) -> tuple[list[str], list[str], list[list[str]]] | None:
        """The values `read` gives, from the elements in document order and a plan made once
        for the message's shape (every element's tag and number of children, which fix the
        tree); None for a shape that cannot be planned, when MAX_SHAPES are planned, or for
        more than MAX_WALKED_ELEMENTS elements (so the shapes kept hold ~1 MB at most)."""
        elements = list(envelope.iter(etree.Element))
        if len(elements) > MAX_WALKED_ELEMENTS:
            return None
        shape = tuple([(element.tag, len(element)) for element in elements])
        try:
            plan = self._plans[shape]
        except KeyError:
            if len(self._plans) >= MAX_SHAPES:
                return None
            plan = self._plans[shape] = self._plan(elements, message)
        if plan is None:
            return None
        header, group, items = plan
        return (_walked(elements, header), _walked(elements, group),
                [_walked(elements, item) for item in items])

    def _plan(self, elements: list[etree._Element], message: etree._Element) -> _Plan | None:
        """Where each field's value is in `elements`: a text-only element's position (its
        text is the field's XPath string value), -1 for a field that is absent, or a
        position and the field's own XPath for attributes and predicates (whose values the
        shape does not fix). None when a field's element holds elements."""
        header_readers, group_readers, item_readers = self._slow_path_readers()
        position = {element: index for index, element in enumerate(elements)}
        namespaces = {"h": HEAD_NS, "p": self.namespace}

        def steps(context: etree._Element, paths: tuple[str, ...], prefix: str,
                  readers: list[etree.XPath]) -> list[_Step] | None:
            planned: list[_Step] = []
            for path, reader in zip(paths, readers, strict=True):
                if "@" in path or "[" in path:
                    planned.append((position[context], reader))
                    continue
                found = context.xpath(_field_xpath(path, prefix), namespaces=namespaces)
                if found and len(found[0]):
                    return None
                planned.append((position[found[0]] if found else -1, None))
            return planned

        parent = self._items_parent(message)
        items = [] if parent is None else list(parent.iterchildren(self._item_tag))
        header = steps(elements[0][0], HEADER_FIELDS, "h", header_readers)
        group = steps(message, self._group_paths, "p", group_readers)
        item_steps = [steps(item, self._item_paths, "p", item_readers) for item in items]
        if header is None or group is None or None in item_steps:
            return None
        return header, group, item_steps  # type: ignore[return-value]

    def _stylesheet(self) -> etree.XSLT:
        def values(paths: tuple[str, ...], prefix: str) -> str:
            return "".join(f'<xsl:value-of select="{_field_xpath(path, prefix)}"/>&#xE000;'
                           for path in paths)

        message = f"p:Document/p:{self.root}[1]"
        *parents, item = _xpath(self.items, "p").split("/")
        items = "/".join([message, *(f"{step}[1]" for step in parents), item])
        return etree.XSLT(etree.XML(
            '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"'
            f' xmlns:e="{ENVELOPE_NS}" xmlns:h="{HEAD_NS}" xmlns:p="{self.namespace}">'
            '<xsl:output method="text" encoding="UTF-8"/><xsl:template match="/">'
            '<xsl:for-each select="e:Envelope">'
            f'<xsl:for-each select="h:AppHdr[1]">{values(HEADER_FIELDS, "h")}</xsl:for-each>'
            f'<xsl:for-each select="{message}">{values(self._group_paths, "p")}'
            f'</xsl:for-each><xsl:for-each select="{items}">'
            f"{values(self._item_paths, 'p')}</xsl:for-each>"
            "</xsl:for-each></xsl:template></xsl:stylesheet>"
        ), access_control=etree.XSLTAccessControl.DENY_ALL)

    def _read_slowly(self, app_header: etree._Element, message: etree._Element
                     ) -> tuple[list[str], list[str], list[list[str]]]:
        """The same values as `read`, one XPath per field: for text holding separators."""
        header_readers, group_readers, item_readers = self._slow_path_readers()
        parent = self._items_parent(message)
        items = [] if parent is None else parent.iterchildren(self._item_tag)
        return (
            [read(app_header) for read in header_readers],
            [read(message) for read in group_readers],
            [[read(item) for read in item_readers] for item in items],
        )

    def _slow_path_readers(self) -> tuple[list[etree.XPath], ...]:
        """string(path) of each header, group and item field, compiled once."""
        if self._slow_readers is None:
            namespaces = {"h": HEAD_NS, "p": self.namespace}

            def compile_(paths: tuple[str, ...], prefix: str) -> list[etree.XPath]:
                return [etree.XPath(f"string({_field_xpath(path, prefix)})", namespaces=namespaces,
                                    smart_strings=False) for path in paths]

            self._slow_readers = (compile_(HEADER_FIELDS, "h"),
                                  compile_(self._group_paths, "p"),
                                  compile_(self._item_paths, "p"))
        return self._slow_readers


# ---- the registry --------------------------------------------------------------------------

BY_NAMESPACE: dict[str, MessageCodec[Any]] = {}
DEFAULT_FOR_TYPE: dict[type, MessageCodec[Any]] = {}

C = TypeVar("C", bound=type[MessageCodec[Any]])


def register(cls: C) -> C:
    """Make a message version readable, and the one written for its type if `default`."""
    codec = cls()
    if codec.namespace in BY_NAMESPACE:
        raise ValueError(f"{cls.msg_def_id} is registered twice")
    BY_NAMESPACE[codec.namespace] = codec
    if cls.default:
        if cls.document_type in DEFAULT_FOR_TYPE:
            raise ValueError(f"two default versions for {cls.document_type.__name__}")
        DEFAULT_FOR_TYPE[cls.document_type] = codec
    return cls
