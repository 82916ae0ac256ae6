"""Password policy, checked whenever a password is used to write."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from ._errors import PasswordPolicyError, ValidationError


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Rules a password must meet to encrypt new data.

    Lengths count characters (code points), not bytes. A symbol is any
    character that is neither a letter nor a digit. Reads never check the
    policy, so data written under an older policy stays readable.
    """

    min_length: int = 16
    allow_empty: bool = False
    require_lowercase: bool = False
    require_uppercase: bool = False
    require_digits: bool = False
    require_symbols: bool = False

    def __post_init__(self) -> None:
        if type(self.min_length) is not int or self.min_length < 0:
            raise ValidationError(
                f"min_length must be an int >= 0, got {self.min_length!r}"
            )
        for name in (
            "allow_empty",
            "require_lowercase",
            "require_uppercase",
            "require_digits",
            "require_symbols",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(f"{name} must be a bool")

    def check(self, password: str, argument: str = "password") -> None:
        """Raise PasswordPolicyError naming the first rule the password breaks."""
        check_password_type(password, argument)
        if password == "":
            if self.allow_empty:
                return
            raise PasswordPolicyError(
                f"{argument} must not be empty (set allow_empty=True to allow it)"
            )
        # The message leaves out the password's length: it narrows a guess.
        if len(password) < self.min_length:
            raise PasswordPolicyError(
                f"{argument} must be at least {self.min_length} characters long"
            )
        rules = (
            (self.require_lowercase, str.islower, "a lowercase letter"),
            (self.require_uppercase, str.isupper, "an uppercase letter"),
            (self.require_digits, str.isdigit, "a digit"),
            (self.require_symbols, _is_symbol, "a symbol"),
        )
        for required, test, what in rules:
            if required and not any(test(char) for char in password):
                raise PasswordPolicyError(f"{argument} must contain {what}")


def _is_symbol(char: str) -> bool:
    return not char.isalnum()


def check_password_type(password: object, argument: str = "password") -> None:
    if not isinstance(password, str):
        raise ValidationError(
            f"{argument} must be a str, got {type(password).__name__}"
        )


class PasswordBytes(bytes):
    """A password in UTF-8 after NFC normalisation. `as_typed` keeps the
    UTF-8 of the text as given, which the Go library used unnormalised."""

    as_typed: bytes


def encode_password(password: str, argument: str = "password") -> PasswordBytes:
    """NFC-normalise and UTF-8 encode, so one typed password gives one key."""
    check_password_type(password, argument)
    try:
        encoded = PasswordBytes(unicodedata.normalize("NFC", password).encode("utf-8"))
        encoded.as_typed = password.encode("utf-8")
        return encoded
    except UnicodeEncodeError:
        raise ValidationError(
            f"{argument} must be valid Unicode text (it contains a lone surrogate)"
        ) from None
