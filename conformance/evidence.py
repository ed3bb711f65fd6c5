"""Evidence a scheme can check: the report folder signed by the suite's switch key.

The signature covers a manifest of every file in the report folder (report.json, report.html,
junit.xml, messages/, which holds the exact bytes of every message exchanged with the bank,
and switch/, the lab switch's journal, sealed first, and its log), each by its SHA-256, so
that no message, verdict or sentence can be edited without `switchlab conformance verify`
refusing the folder. The verifier walks the folder, not the manifest: a file present and not
signed is refused as a file signed and missing is. It is Ed25519 (RFC 8032) in both
signing modes: in `ed25519` the switch's own key (switch.pem), in `hmac`, where the switch has
no key of its own, the suite's report key (suite.pem in the credentials folder). The scheme
checks the signature against the public key it holds (`--public-key`): a key carried in the
folder only shows that nothing changed after signing, not who signed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from protocol.keys import public_key_text, read_public_key
from protocol.signing import Ed25519SigningKey, Ed25519VerifyKey
from protocol.wording import count

SIGNATURE_FILE = "signature.json"
VERSION = "switchlab-conformance-report/1"
# a line of ~100 bytes a file: two files an exchange, up to the relay's 100,000 exchanges
MAX_SIGNATURE_FILE_BYTES = 32 * 1024 * 1024
# Entries (files and folders) walked in a report folder: a report holds two files an exchange
# (conformance/relay.py MAX_EXCHANGES, 100,000), its reports, journal and log, and a folder a case.
MAX_REPORT_ENTRIES = 250_000
# Folders looked up from a file for the report folder holding signature.json: messages/<case>/
# is two below it; a file deeper than this is not in a report.
MAX_REPORT_DEPTH = 8


class EvidenceError(ValueError):
    """The folder is not a signed report, or it was changed after signing: the text says
    which file."""


def _digest(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def manifest(folder: Path) -> dict[str, str]:
    """Relative path -> hex SHA-256 of every file in the report folder, in every subfolder,
    hidden ones too, but signature.json. Raises EvidenceError for an entry that is neither a
    file nor a folder (a link, a socket): nothing in a report is one."""
    files: dict[str, str] = {}
    entries = []
    for path in folder.rglob("*"):
        entries.append(path)
        if len(entries) > MAX_REPORT_ENTRIES:
            raise EvidenceError(
                f"{folder} holds more than {MAX_REPORT_ENTRIES:,} files and folders: not a "
                f"report of this suite (at most two files a message exchange, 100,000 "
                f"exchanges); pass the report folder itself")
    for path in sorted(entries):
        name = path.relative_to(folder).as_posix()
        if name == SIGNATURE_FILE or (path.is_dir() and not path.is_symlink()):
            continue
        if path.is_symlink() or not path.is_file():
            raise EvidenceError(f"{name} is not a plain file: a report holds files only")
        files[name] = _digest(path)
    return files


def _signed_text(files: dict[str, str]) -> bytes:
    """What the signature covers: the version, then one `path<TAB>sha256` line a file."""
    lines = [VERSION, *(f"{name}\t{digest}" for name, digest in sorted(files.items()))]
    return "\n".join(lines).encode()


def sign(folder: Path, key: Ed25519SigningKey) -> Path:
    """Write signature.json over the folder's report files; its path."""
    files = manifest(folder)
    record = {"version": VERSION, "algorithm": "ed25519",
              "public_key": public_key_text(key.verify_key()), "files": files,
              "signature": key.sign(_signed_text(files)).hex()}
    path = folder / SIGNATURE_FILE
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return path


def report_folder(target: Path) -> Path:
    """The report folder `target` is or is in: the nearest folder holding signature.json,
    looked for from `target` (a folder) or its folder (a file) up to MAX_REPORT_DEPTH above.
    Raises EvidenceError saying which folder to pass when there is none."""
    start = target if target.is_dir() else target.parent
    for folder in [start, *start.resolve().parents][:MAX_REPORT_DEPTH + 1]:
        if (folder / SIGNATURE_FILE).is_file():
            return folder
    raise EvidenceError(
        f"no {SIGNATURE_FILE} in {start} or a folder above it (up to {MAX_REPORT_DEPTH}): not in a "
        f"signed report; pass the report folder (the one holding {SIGNATURE_FILE}, "
        "report.json and report.html, the --output of the run)")


def verify(target: Path, public_key: Ed25519VerifyKey | None = None) -> str:
    """Check a signed report folder (or any file in it, at any depth: report_folder); a
    sentence saying what was checked. Raises EvidenceError naming the first file added,
    removed or changed, or a signature that does not check (under `public_key` when given,
    else the key in the folder), or a folder past MAX_REPORT_ENTRIES."""
    if not target.exists():
        raise EvidenceError(f"{target}: no such file or folder")
    folder = report_folder(target)
    path = folder / SIGNATURE_FILE
    try:
        if path.stat().st_size > MAX_SIGNATURE_FILE_BYTES:
            raise EvidenceError(f"{path} is over {MAX_SIGNATURE_FILE_BYTES:,} bytes")
        record = json.loads(path.read_text(encoding="utf-8"))
        signed_files = dict(record["files"])
        if len(signed_files) > MAX_REPORT_ENTRIES:
            raise ValueError(f"it signs over {MAX_REPORT_ENTRIES:,} files")
        signature = str(record["signature"])
        carried = read_public_key(str(record["public_key"]))
    except FileNotFoundError:
        raise EvidenceError(f"{folder} holds no {SIGNATURE_FILE}: not a signed report") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise EvidenceError(f"{path} is not a report signature: {error}") from None
    key = public_key or carried
    try:
        raw_signature = bytes.fromhex(signature)
    except ValueError:
        raw_signature = b""
    if not key.verify(_signed_text(signed_files), raw_signature):
        raise EvidenceError(f"the signature in {path} does not check"
                            + (" under the given public key" if public_key else "")
                            + ": the manifest was edited, or another key signed it")
    found = manifest(folder)
    for name in sorted(set(signed_files) | set(found)):
        if name not in found:
            raise EvidenceError(f"{name} was signed and is missing")
        if name not in signed_files:
            raise EvidenceError(f"{name} was added after signing")
        if found[name] != signed_files[name]:
            raise EvidenceError(f"{name} was changed after signing (SHA-256 {found[name][:16]}…,"
                                f" signed {signed_files[name][:16]}…)")
    whose = "the given public key" if public_key else "the public key it carries (give the " \
        "scheme's with --public-key to know who signed)"
    return (f"{folder}: {count(len(found), 'file')}, every message exchanged with the bank "
            f"among them, "
            f"unchanged since signed; the signature checks under {whose}")
