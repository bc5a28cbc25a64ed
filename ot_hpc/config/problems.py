"""A problem with the input, as one printable line that never shows a secret value."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .secrets import SECRET_HINT, is_secret_cli_text, is_secret_name, is_secret_override_key


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: ``field=value (source): message; fix``."""

    field: str
    value: Optional[str]
    message: str
    fix: str
    source: str = ""

    def line(self) -> str:
        value = self.value
        if value is not None and value != "<hidden>" and (
                is_secret_override_key(self.field) or is_secret_name(self.field)
                or self.field.startswith("-S") and is_secret_cli_text(value)):
            value = "<hidden>"  # never print what may be a secret value
        shown = "" if value is None else f"={value!r}"
        where = f" ({self.source})" if self.source else ""
        return f"{self.field}{shown}{where}: {self.message}; {self.fix}"


def secret_override_problem(key: str, source: str) -> Problem:
    """``key`` (an override whose key looks like a secret) must not be passed at all."""
    return Problem(key, "<hidden>", "looks like a secret and must not be passed as an "
                   "override (it would be on the trainer's command line and in the spec)",
                   SECRET_HINT, source)
