"""Exact values that must never be published: this machine's credentials and the user's own list.

A scanner finds secrets by their shape; a key with an unusual shape (`sk-…` from a gateway, an AWS
key pair written as an assignment) can pass it. The values in the environment of the exporting
machine whose names say they are credentials, and the values of `--redact-values FILE`, are
searched for exactly, in every file the scanner reads (raw and decoded), by this built-in detector.
They count as verified findings: they are live credentials, so they block whatever the policy,
and `--redact` replaces them like any other finding.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from exporter.core.errors import UserError
from exporter.scan.findings import Finding, SecretBook, make_finding

SCANNER = "agentcap"
FILE_DETECTOR = "redact-values"
MIN_ENV_VALUE_LENGTH = 16  # shorter values are flags, regions and ids, and would rewrite ordinary text
MIN_LISTED_VALUE_LENGTH = 8
_CHUNK = 8 * 1024 * 1024

# Names that say "credential": *_API_KEY, *_TOKEN, *_SECRET, *_PASSWORD, …, and AWS_* (whose
# settings that are not secrets are listed below and never taken).
_CREDENTIAL_NAME = re.compile(
    r"(^|_)(API_?KEY|APIKEY|TOKEN|SECRET|SECRET_?KEY|ACCESS_?KEY(_ID)?|PRIVATE_?KEY|PASSWORD|PASSWD|"
    r"CREDENTIALS?|AUTH_?KEY)$|^AWS_",
    re.IGNORECASE,
)
_NOT_CREDENTIALS = re.compile(
    r"^AWS_(DEFAULT_)?(REGION|PROFILE|OUTPUT|PAGER|CA_BUNDLE|CONFIG_FILE|SHARED_CREDENTIALS_FILE|"
    r"ENDPOINT_URL.*|ROLE_SESSION_NAME|SDK_.*|EXECUTION_ENV|RETRY_MODE|MAX_ATTEMPTS|STS_REGIONAL_ENDPOINTS|"
    r"USE_FIPS_ENDPOINT|USE_DUALSTACK_ENDPOINT|LAMBDA_.*|WEB_IDENTITY_TOKEN_FILE)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class KnownValue:
    detector: str  # "env:OPENAI_API_KEY" or "redact-values"
    value: str


@dataclass(frozen=True)
class KnownValues:
    values: tuple[KnownValue, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.values)

    def __repr__(self) -> str:  # never the values themselves
        return f"KnownValues({len(self.values)} values)"

    @property
    def digest(self) -> str:
        """Changes whenever the set of values does (for the scan cache key); reveals none of them."""
        material = "\0".join(sorted(f"{known.detector}\0{known.value}" for known in self.values))
        return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()

    def remember(self, book: SecretBook) -> None:
        for known in self.values:
            book.remember(known.value)


def known_values(environ: Mapping[str, str] | None = None, values_file: Path | None = None) -> KnownValues:
    """The credentials in `environ` (default: this process's environment) plus the file's values."""
    environ = os.environ if environ is None else environ
    found = [
        KnownValue(f"env:{name}", value)
        for name, value in sorted(environ.items())
        if _CREDENTIAL_NAME.search(name) and not _NOT_CREDENTIALS.match(name) and _looks_secret(value)
    ]
    if values_file is not None:
        found += read_values_file(values_file)
    unique: dict[str, KnownValue] = {}
    for known in found:
        unique.setdefault(known.value, known)
    return KnownValues(tuple(unique.values()))


def _looks_secret(value: str) -> bool:
    # Paths and URLs (a CA bundle, a credentials *file*) are settings, not secrets.
    return (
        len(value) >= MIN_ENV_VALUE_LENGTH
        and not any(character.isspace() for character in value)
        and not value.startswith(("/", "~", "./", "../"))
        and "://" not in value
    )


def read_values_file(path: Path) -> list[KnownValue]:
    """One value per line; blank lines and lines starting with `#` are skipped; whitespace around is not part of it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(
            f"--redact-values {path}: cannot read it ({error}); give a UTF-8 file, one value per line"
        ) from None
    values = []
    for number, line in enumerate(lines, start=1):
        value = line.strip()
        if not value or value.startswith("#"):
            continue
        if len(value) < MIN_LISTED_VALUE_LENGTH:
            raise UserError(
                f"{path}:{number}: a value shorter than {MIN_LISTED_VALUE_LENGTH} characters would rewrite "
                "ordinary text wherever it appears; remove it or list the whole secret"
            )
        values.append(KnownValue(FILE_DETECTOR, value))
    return values


def find_known(
    known: KnownValues, path: Path, *, file: str, line_of: Callable[[int], int | None] | None = None
) -> tuple[list[Finding], SecretBook]:
    """Every line of `path` holding one of the values, as verified findings filed under `file`."""
    book = SecretBook()
    if not known:
        return [], book
    forms: dict[bytes, KnownValue] = {}
    for item in known.values:
        for form in written_forms(item.value):
            forms.setdefault(form.encode("utf-8", "surrogatepass"), item)
    pattern = re.compile(b"|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))
    overlap = max(map(len, forms)) - 1
    seen: set[tuple[str, int | None]] = set()
    findings = []
    for match, line in _matches(path, pattern, overlap):
        item = forms[match]
        where = line_of(line) if line_of else line
        if (item.detector, where) in seen:
            continue
        seen.add((item.detector, where))
        findings.append(
            make_finding(
                book,
                scanner=SCANNER,
                detector=item.detector,
                file=file,
                line=where,
                status="verified",
                secret=item.value,
            )
        )
    return findings, book


def _matches(path: Path, pattern: re.Pattern[bytes], overlap: int) -> Iterator[tuple[bytes, int]]:
    """(matched bytes, 1-based line) of every match, reading the file in chunks that overlap."""
    with path.open("rb") as handle:
        carried = b""
        line = 1  # line number at the start of `carried`
        while True:
            chunk = handle.read(_CHUNK)
            data = carried + chunk
            searched = len(data) if not chunk else max(len(data) - overlap, 0)
            position, lines_before = 0, line
            for match in pattern.finditer(data):
                if match.start() >= searched:
                    break
                lines_before += data.count(b"\n", position, match.start())
                position = match.start()
                yield match.group(), lines_before
            if not chunk:
                return
            line += data.count(b"\n", 0, searched)
            carried = data[searched:]


def written_forms(secret: str) -> set[str]:
    """The secret as found, as JSON writes it, and unescaped when it was found with JSON escapes."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    try:
        decoded = json.loads(f'"{secret}"')
    except ValueError:
        decoded = None
    if isinstance(decoded, str):
        forms.add(decoded)
    return {form for form in forms if form}
