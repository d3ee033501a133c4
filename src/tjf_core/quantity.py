"""Kubernetes resource quantities (``500m``, ``0.5``, ``512Mi``, ``1e3``), exact.

cpu and memory reach tjf as text typed by people and as text read back from the cluster. tjf
compares them with LimitRange bounds, halves a limit to get a request and writes them back into
manifests, and a binary float would drift on the way (``0.1 + 0.2``). So every value here is a
:class:`decimal.Decimal` (or an exact :class:`fractions.Fraction` inside a computation); no float
is accepted, and no float is ever produced.

Grammar (the grammar of ``resource.Quantity`` in k8s.io/apimachinery)::

    quantity ::= [sign] number [suffix]
    sign     ::= "+" | "-"
    number   ::= digits | digits "." | digits "." digits | "." digits
    suffix   ::= binary | decimal | exponent
    binary   ::= "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"                 powers of 1024
    decimal  ::= "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E"     powers of 1000
    exponent ::= ("e" | "E") [sign] digits                               powers of 10

Suffixes are case-sensitive (``1K`` and ``5KB`` are refused) and nothing may surround the text.

Values, as in Kubernetes:

* The exact value is kept, rounded *away from zero* to a whole nano (10^-9): Kubernetes rounds
  up so that asking for a tiny amount still asks for something (``0.1n`` is ``1n``). Results of
  arithmetic are rounded the same way.
* The suffix family the text was written in (binary, decimal, exponent) is kept as
  :class:`QuantityFormat`. It chooses how the value is printed and takes no part in equality,
  hashing or ordering: ``0.5 == 500m`` and ``1Gi == 1073741824``.

Canonical text (Kubernetes' ``CanonicalizeBytes``):

1. Zero is ``0``.
2. BinarySI, when the value is a whole number of magnitude at least 1024 that 1024 divides: the
   largest binary suffix (up to ``Ei``) leaving a whole mantissa (``1Gi``, ``1536Mi``; ``1.5Gi`` is
   ``1536Mi``). Any other BinarySI value is printed as DecimalSI (``512``, ``1500m``).
3. DecimalSI: the value as ``m * 10^e`` with ``m`` whole and ``e`` the largest multiple of 3 that
   allows it, ``e`` named by its suffix (``n`` -9, ``u``, ``m``, none, ``k``, ``M``, ``G``, ``T``,
   ``P``, ``E`` 18): ``0.5`` is ``500m``, ``1000`` is ``1k``, ``1500`` stays ``1500``, ``2000m``
   is ``2``.
4. DecimalExponent: as DecimalSI, but ``e`` is written ``e<e>`` (``1e3``, ``500e-3``, ``1500``).

Deliberate differences from Kubernetes, each to keep a promise Kubernetes does not:

* A magnitude above 2^63-1 (the limit Kubernetes documents) is refused; Kubernetes silently caps
  binary quantities there and keeps larger decimal ones.
* A BinarySI whole number that 1024 does not divide is printed as DecimalSI (``2000`` bytes is
  ``2k``), where Kubernetes prints ``2000``: it reads ``2000`` back as DecimalSI, prints that as
  ``2k``, and so its canonical text is not a fixed point. Here ``parse(str(q)) == q`` and
  ``str(parse(str(q))) == str(q)`` hold for every ``q``.
* Text longer than 100 characters is refused, and a suffix needs a number (Go reads ``Mi`` as 0).
"""

from __future__ import annotations

import enum
import functools
import json
import re
from decimal import Decimal
from fractions import Fraction

import attrs

from tjf_core.errors import InvalidQuantityError, Problem

__all__ = [
    "MAX_MAGNITUDE",
    "Quantity",
    "QuantityFormat",
    "format_quantity",
    "parse_quantity",
]

#: The largest magnitude a quantity may have (Kubernetes documents 2^63-1; it is ``8Ei - 1``).
MAX_MAGNITUDE = 2**63 - 1

_NANO = 10**9
_MAX_TEXT_LENGTH = 100
_DECIMAL_SUFFIX_EXPONENTS = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_SUFFIX_BY_DECIMAL_EXPONENT = {exp: suffix for suffix, exp in _DECIMAL_SUFFIX_EXPONENTS.items()}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")  # index = power of 1024

# [0-9], not \d: \d would let in other scripts' digits, which Kubernetes refuses.
_SYNTAX = re.compile(
    r"(?P<sign>[+-]?)(?P<whole>[0-9]*)(?:\.(?P<fraction>[0-9]*))?"
    r"(?:(?P<exponent>[eE][+-]?[0-9]+)|(?P<binary>[KMGTPE]i)|(?P<decimal>[numkMGTPE]))?"
)
_HINT = "use a number with an optional suffix, e.g. 500m, 0.5, 512Mi, 2G"
_RANGE = f"a quantity must be between -{MAX_MAGNITUDE} and {MAX_MAGNITUDE} (8Ei - 1)"


class QuantityFormat(enum.Enum):
    """The suffix family a quantity was written in; it decides how the quantity is printed."""

    BINARY_SI = "BinarySI"
    DECIMAL_SI = "DecimalSI"
    DECIMAL_EXPONENT = "DecimalExponent"


def _show(value: object) -> str:
    """The offending input as a message shows it: strings quoted, long ones cut short."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"a {value.bit_length()}-bit integer"  # str() of a huge int is refused by Python
    shown = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _error(field: str, message: str) -> InvalidQuantityError:
    return InvalidQuantityError([Problem(field, message)])


def _nanos(exact: Fraction) -> int | None:
    """``exact`` in whole nanos, rounded away from zero; None beyond :data:`MAX_MAGNITUDE`."""
    if abs(exact) > MAX_MAGNITUDE:
        return None
    scaled = exact * _NANO
    magnitude = -(-abs(scaled.numerator) // scaled.denominator)
    return magnitude if scaled >= 0 else -magnitude


def _decimal_from_nanos(nanos: int) -> Decimal:
    """The Decimal equal to ``nanos`` * 10^-9, without trailing zeros after the point."""
    if nanos == 0:
        return Decimal(0)
    text = str(abs(nanos))
    zeros = min(len(text) - len(text.rstrip("0")), 9)
    sign = "-" if nanos < 0 else ""
    # Built from text, never through a Decimal context, whose precision could round.
    return Decimal(f"{sign}{text[:len(text) - zeros]}E{zeros - 9}")


_MAX_NANOS = MAX_MAGNITUDE * _NANO


def _nanos_of(mantissa: int, exponent: int) -> int | None:
    """``mantissa * 10**exponent`` in whole nanos, rounded away from zero; None when too large.

    Integer arithmetic only (the hot path of parsing): no Fraction, no Decimal context.
    """
    if mantissa == 0:
        return 0
    digits = len(str(abs(mantissa)))
    if digits + exponent > 20:  # at least 10^19 > MAX_MAGNITUDE
        return None
    if digits + exponent < -20:  # far below a nano: rounds away from zero to one nano
        return 1 if mantissa > 0 else -1
    shift = exponent + 9
    if shift >= 0:
        nanos = mantissa * 10**shift
    else:
        magnitude = -(-abs(mantissa) // 10**-shift)
        nanos = magnitude if mantissa > 0 else -magnitude
    return None if abs(nanos) > _MAX_NANOS else nanos


def _parts_of(value: Decimal) -> tuple[int, int]:
    """A finite Decimal as (mantissa, exponent) integers, exactly."""
    sign, digits, exponent = value.as_tuple()
    mantissa = 0
    for digit in digits:
        mantissa = mantissa * 10 + digit
    return (-mantissa if sign else mantissa), int(exponent)


def _bounded(exact: Decimal) -> Fraction:
    """``exact`` as a Fraction, its magnitude clamped where that cannot change any result.

    Every nonzero quantity lies between 10^-9 and 10^19 in magnitude, so a factor beyond
    10^±61 already makes any product or quotient too large or smaller than a nano; clamping it
    keeps that outcome while sparing the big integers of ``Fraction(Decimal("1e999999999"))``.
    """
    if exact.is_zero():
        return Fraction(0)
    sign = -1 if exact.is_signed() else 1
    if exact.adjusted() > 60:
        return Fraction(sign * 10**61)
    if exact.adjusted() < -60:
        return Fraction(sign, 10**61)
    return Fraction(exact)


_MAX_DECIMAL = Decimal(MAX_MAGNITUDE)


def _is_exact(value: Decimal) -> bool:
    """Whether ``value`` already is a whole number of nanos in range (what parsing makes)."""
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -9 and abs(value) <= _MAX_DECIMAL


def _exact_value(value: Decimal | int) -> Decimal:
    """attrs converter: any Decimal or int, rounded to a whole nano and checked for range."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        kind = type(value).__name__
        raise TypeError(f"a quantity's value must be a Decimal or an int, not {kind}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise _error("", f"{value} is not a Kubernetes quantity: use a finite number")
    if isinstance(value, Decimal) and _is_exact(value):
        return value
    nanos = _nanos_of(*_parts_of(value)) if isinstance(value, Decimal) else _nanos_of(value, 0)
    if nanos is None:
        raise _error("", f"{_show(value)} is too large: {_RANGE}")
    return _decimal_from_nanos(nanos)


@attrs.frozen(eq=False, order=False)
class Quantity:
    """An exact Kubernetes quantity; equal, hashed and ordered by value alone."""

    value: Decimal = attrs.field(converter=_exact_value)
    format: QuantityFormat = attrs.field(
        default=QuantityFormat.DECIMAL_SI, validator=attrs.validators.instance_of(QuantityFormat)
    )

    @classmethod
    def parse(cls, text: str | int | Decimal) -> Quantity:
        """Parse ``text``; raises InvalidQuantityError naming the text and the allowed forms."""
        return parse_quantity(text)

    def __str__(self) -> str:
        return self.text

    @functools.cached_property
    def text(self) -> str:
        """The canonical text (computed once: rendering prints the same quantity often)."""
        return format_quantity(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __lt__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value <= other.value

    def __gt__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value > other.value

    def __ge__(self, other: Quantity) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.value >= other.value

    def _with(self, exact: Fraction, fmt: QuantityFormat) -> Quantity:
        nanos = _nanos(exact)
        if nanos is None:
            raise _error("", f"{self} scaled this way is too large: {_RANGE}")
        return Quantity(_decimal_from_nanos(nanos), fmt)

    def __mul__(self, factor: int | Decimal) -> Quantity:
        """The quantity times ``factor``, in the same format, rounded away from zero to a nano."""
        exact = _factor(factor, "multiply")
        if exact is None:
            return NotImplemented
        return self._with(Fraction(self.value) * exact, self.format)

    __rmul__ = __mul__

    def __truediv__(self, divisor: int | Decimal) -> Quantity:
        """The quantity divided by ``divisor`` (``limit / 2`` is a request), rounded like ``*``."""
        exact = _factor(divisor, "divide")
        if exact is None:
            return NotImplemented
        if exact == 0:
            raise ZeroDivisionError(f"cannot divide the quantity {self} by zero")
        return self._with(Fraction(self.value) / exact, self.format)

    def __add__(self, other: Quantity) -> Quantity:
        """The sum; its format is this quantity's, or ``other``'s when this one is zero."""
        if not isinstance(other, Quantity):
            return NotImplemented
        fmt = other.format if self.value.is_zero() else self.format
        return self._with(Fraction(self.value) + Fraction(other.value), fmt)

    def __sub__(self, other: Quantity) -> Quantity:
        """The difference; its format follows the same rule as ``+``."""
        if not isinstance(other, Quantity):
            return NotImplemented
        fmt = other.format if self.value.is_zero() else self.format
        return self._with(Fraction(self.value) - Fraction(other.value), fmt)

    def __neg__(self) -> Quantity:
        return Quantity(self.value.copy_negate(), self.format)


def _factor(factor: object, verb: str) -> Fraction | None:
    """An int or Decimal operand as an exact Fraction; None for operands we do not take."""
    if isinstance(factor, bool) or not isinstance(factor, (int, Decimal)):
        return None
    if isinstance(factor, int):
        return Fraction(factor)
    if not factor.is_finite():
        raise ValueError(f"cannot {verb} a quantity by {factor}: use a finite number")
    return _bounded(factor)


def parse_quantity(text: str | int | Decimal, *, field: str = "") -> Quantity:
    """Parse a Kubernetes quantity; an InvalidQuantityError's one Problem has the path ``field``.

    Strings follow the grammar in the module docstring. An int or Decimal is taken as a plain
    DecimalSI number. A float is refused: it may already be inexact, so the caller must write the
    quantity as a string.
    """
    if isinstance(text, float):
        raise _error(
            field,
            f"{text!r} is a floating-point number, which may be inexact: write the quantity as "
            f'a string, e.g. "{text!r}", 500m, 512Mi',
        )
    if isinstance(text, bool) or not isinstance(text, (str, int, Decimal)):
        raise _error(field, f"{_show(text)} is not a Kubernetes quantity: {_HINT}")
    if isinstance(text, str):
        return _parse_text(text, field)
    if isinstance(text, Decimal) and not text.is_finite():
        raise _error(
            field, f"{text} is not a Kubernetes quantity: use a finite number, e.g. 500m, 0.5, 2G"
        )
    mantissa, exponent = _parts_of(text) if isinstance(text, Decimal) else (text, 0)
    return _quantity(mantissa, exponent, QuantityFormat.DECIMAL_SI, given=text, field=field)


def _quantity(
    mantissa: int, exponent: int, fmt: QuantityFormat, *, given: object, field: str
) -> Quantity:
    nanos = _nanos_of(mantissa, exponent)
    if nanos is None:
        raise _error(field, f"{_show(given)} is too large: {_RANGE}")
    return _exact_quantity(_decimal_from_nanos(nanos), fmt)


def _exact_quantity(value: Decimal, fmt: QuantityFormat) -> Quantity:
    """A Quantity of a value already rounded to nanos and range-checked, without re-checking.

    Parsing is on the hot path of every readback; the converter's checks would only repeat
    what :func:`_nanos_of` has just done.
    """
    quantity = object.__new__(Quantity)
    object.__setattr__(quantity, "value", value)
    object.__setattr__(quantity, "format", fmt)
    return quantity


def _parse_text(text: str, field: str) -> Quantity:
    if len(text) > _MAX_TEXT_LENGTH:
        raise _error(field, f"{_show(text)} is too long for a Kubernetes quantity: {_HINT}")
    match = _SYNTAX.fullmatch(text)
    if match is None or not (match["whole"] or match["fraction"]):
        raise _error(field, f"{_show(text)} is not a Kubernetes quantity: {_HINT}{_why(text)}")
    fraction = match["fraction"] or ""
    mantissa = int((match["whole"] or "") + fraction)
    exponent = -len(fraction)
    if match["exponent"]:
        exponent += int(match["exponent"][1:])  # at most 100 characters, so int() can take it
        fmt = QuantityFormat.DECIMAL_EXPONENT
    elif match["binary"]:
        mantissa *= 1024 ** _BINARY_SUFFIXES.index(match["binary"])
        fmt = QuantityFormat.BINARY_SI
    else:
        exponent += _DECIMAL_SUFFIX_EXPONENTS[match["decimal"] or ""]
        fmt = QuantityFormat.DECIMAL_SI
    if match["sign"] == "-":
        mantissa = -mantissa
    return _quantity(mantissa, exponent, fmt, given=text, field=field)


def _why(text: str) -> str:
    """A hint for the usual mistakes, appended to the error message."""
    if any(c.isspace() for c in text):
        return " (without spaces)"
    if text.endswith("B"):
        return " (suffixes have no B: 512Mi, not 512MiB)"
    if "K" in text.replace("Ki", ""):
        return " (suffixes are case-sensitive: k means 1000, Ki means 1024)"
    return ""


def format_quantity(q: Quantity) -> str:
    """The canonical text of ``q``, as Kubernetes would print it (rules in the module docstring)."""
    if q.value.is_zero():
        return "0"
    # Integers only from here: |value| < 2^63 is a whole number of nanos, so they stay small, and
    # no Decimal context (whose precision a caller may have lowered) takes part.
    mantissa, exponent = _parts_of(q.value)
    sign = "-" if mantissa < 0 else ""
    mantissa = abs(mantissa)
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    if q.format is QuantityFormat.BINARY_SI and exponent >= 0:
        whole = mantissa * 10**exponent
        if whole >= 1024 and whole % 1024 == 0:
            power = 0
            while whole % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
                whole //= 1024
                power += 1
            return f"{sign}{whole}{_BINARY_SUFFIXES[power]}"
    while exponent % 3:
        mantissa *= 10
        exponent -= 1
    if q.format is QuantityFormat.DECIMAL_EXPONENT:
        suffix = f"e{exponent}" if exponent else ""
    else:
        suffix = _SUFFIX_BY_DECIMAL_EXPONENT[exponent]
    return f"{sign}{mantissa}{suffix}"
