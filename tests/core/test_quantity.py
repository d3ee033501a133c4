"""Tests of Kubernetes quantities: the grammar, exact values, canonical text and its laws."""

from __future__ import annotations

import json
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tjf_core.quantity
from tjf_core.errors import InvalidInputError, InvalidQuantityError, Problem
from tjf_core.quantity import (
    MAX_MAGNITUDE,
    Quantity,
    QuantityFormat,
    format_quantity,
    parse_quantity,
)

P = Quantity.parse
BIN = QuantityFormat.BINARY_SI
DEC = QuantityFormat.DECIMAL_SI
EXP = QuantityFormat.DECIMAL_EXPONENT
HINT = "use a number with an optional suffix, e.g. 500m, 0.5, 512Mi, 2G"
GI = 1024**3


def test_public_surface() -> None:
    assert sorted(tjf_core.quantity.__all__) == [
        "MAX_MAGNITUDE",
        "Quantity",
        "QuantityFormat",
        "format_quantity",
        "parse_quantity",
    ]


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("0.5", "500m"),
        ("1", "1000m"),
        ("0.5Gi", "512Mi"),
        ("1Gi", "1073741824"),
        ("1Gi", "1024Mi"),
        ("1e3", "1k"),
        ("1E3", "1k"),
        ("1.5e-3", "1500u"),
        ("1E", "1e18"),
        ("1.", "1"),
        (".5", "0.5"),
        ("+1Ki", "1024"),
        ("-0", "0"),
        ("0Mi", "0n"),
        ("100.035k", "100035"),
        ("1e+3", "1000"),
    ],
)
def test_equal_values(left: str, right: str) -> None:
    assert P(left) == P(right)
    assert hash(P(left)) == hash(P(right))


def test_exact_values_and_formats() -> None:
    assert P("512Mi").value == 512 * 1024**2
    assert P("512Mi").format is BIN
    assert P("250m").value == Decimal("0.25")
    assert P("250m").format is DEC
    assert P("1e3").format is EXP
    assert P("7Ei").value == 7 * 2**60
    assert P("-1.5Ki").value == -1536


def test_decimal_and_binary_giga_differ() -> None:
    assert P("1G") != P("1Gi")
    assert P("1Gi") > P("1G")
    assert P("1G") < P("1Gi")
    assert P("1Gi") >= P("1024Mi")
    assert P("1G") <= P("1000M")
    assert P("10000T") > P("100Gi")
    assert sorted([P("1Gi"), P("1"), P("-1"), P("500m"), P("1G")]) == [
        P("-1"),
        P("500m"),
        P("1"),
        P("1G"),
        P("1Gi"),
    ]


def test_values_finer_than_a_nano_round_away_from_zero() -> None:
    assert P("0.1n").value == Decimal("1e-9")
    assert P("-0.1n").value == Decimal("-1e-9")
    assert P("3.001n") == P("4n")
    assert P("0.00000012345") == P("124n")
    assert P("0.000000000001Ki") == P("2n")
    assert P("1e-99999") == P("1n")
    assert Quantity(Decimal("1e-30")).value == Decimal("1e-9")


def test_ints_and_decimals_are_plain_decimal_numbers() -> None:
    assert P(2) == P("2")
    assert P(Decimal("0.25")) == P("250m")
    assert P(Decimal("1E+3")).format is DEC
    assert str(P(Decimal("1E+3"))) == "1k"
    assert P(Decimal("1e-999999999")) == P("1n")


def test_magnitude_limit() -> None:
    assert P(str(MAX_MAGNITUDE)).value == MAX_MAGNITUDE
    assert P(f"-{MAX_MAGNITUDE}").value == -MAX_MAGNITUDE
    for text in ["8Ei", "-8Ei", "9223372036854775808", "1e19", "1e99999"]:
        with pytest.raises(InvalidQuantityError, match="is too large: a quantity must be between"):
            P(text)
    with pytest.raises(InvalidQuantityError, match="is too large"):
        P(2**70)
    with pytest.raises(InvalidQuantityError, match="is too large"):
        P(Decimal("1e999999999"))


def test_a_lowered_decimal_context_changes_nothing() -> None:
    with localcontext() as ctx:
        ctx.prec = 3
        q = P("123456789.123456789")
        assert str(q) == "123456789123456789n"
        assert str(-q) == "-123456789123456789n"
        assert str(P("1234567Gi")) == "1234567Gi"
        assert str(q * 3 / 3) == "123456789123456789n"


# --- rejections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "extra"),
    [
        ("", ""),
        ("5KB", " (suffixes have no B: 512Mi, not 512MiB)"),
        ("512MiB", " (suffixes have no B: 512Mi, not 512MiB)"),
        ("1K", " (suffixes are case-sensitive: k means 1000, Ki means 1024)"),
        ("1 Gi", " (without spaces)"),
        (" 1", " (without spaces)"),
        ("1\n", " (without spaces)"),
        ("1.2.3", ""),
        ("0x10", ""),
        ("Mi", ""),
        ("-", ""),
        (".", ""),
        (".Mi", ""),
        ("NaN", ""),
        ("inf", ""),
        ("Infinity", ""),
        ("1e", ""),
        ("1e3.5", ""),
        ("1e3Mi", ""),
        ("1ki", ""),
        ("1mi", ""),
        ("1i", ""),
        ("--1", ""),
        ("1_000", ""),
        ("\uff11", ""),  # a fullwidth digit one
        ("\u0661", ""),  # an Arabic-Indic digit one
    ],
)
def test_rejected_text(text: str, extra: str) -> None:
    with pytest.raises(InvalidQuantityError) as caught:
        parse_quantity(text, field="memory")
    shown = json.dumps(text, ensure_ascii=False)
    message = f"{shown} is not a Kubernetes quantity: {HINT}{extra}"
    assert caught.value.problems == (Problem("memory", message),)
    assert str(caught.value) == f"memory: {message}"
    assert caught.value.http_status == 400
    assert isinstance(caught.value, InvalidInputError)


def test_rejection_message_example() -> None:
    with pytest.raises(InvalidQuantityError) as caught:
        P("5KB")
    assert str(caught.value).startswith(f'"5KB" is not a Kubernetes quantity: {HINT}')
    assert caught.value.problems[0].path == ""


def test_floats_are_refused_with_advice() -> None:
    with pytest.raises(InvalidQuantityError) as caught:
        parse_quantity(0.5, field="cpu")  # type: ignore[arg-type]
    (problem,) = caught.value.problems
    assert problem.path == "cpu"
    assert problem.message.startswith("0.5 is a floating-point number")
    assert 'write the quantity as a string, e.g. "0.5"' in problem.message


@pytest.mark.parametrize("value", [True, None, [1], b"1", Decimal("NaN"), Decimal("-Infinity")])
def test_other_values_are_refused(value: object) -> None:
    with pytest.raises(InvalidQuantityError, match="is not a Kubernetes quantity"):
        parse_quantity(value, field="cpu")  # type: ignore[arg-type]


def test_very_long_text_is_refused_shortened() -> None:
    with pytest.raises(InvalidQuantityError) as caught:
        P("1" * 5000)
    assert "too long for a Kubernetes quantity" in str(caught.value)
    assert len(str(caught.value)) < 200


def test_constructor_checks_its_value() -> None:
    with pytest.raises(TypeError, match="not float"):
        Quantity(1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidQuantityError, match="finite"):
        Quantity(Decimal("NaN"))
    with pytest.raises(InvalidQuantityError, match="too large"):
        Quantity(2**63)
    with pytest.raises(TypeError):
        Quantity(Decimal(1), "DecimalSI")  # type: ignore[arg-type]


# --- canonical text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0", "0"),
        ("0Gi", "0"),
        ("0e9", "0"),
        ("-0.0m", "0"),
        ("0.5", "500m"),
        ("0.1", "100m"),
        ("1500", "1500"),
        ("1000", "1k"),
        ("1500m", "1500m"),
        ("2000m", "2"),
        ("1.08", "1080m"),
        ("-9.01", "-9010m"),
        ("1000M", "1G"),
        ("0.001T", "1G"),
        ("1000u", "1m"),
        ("1.5k", "1500"),
        ("9E", "9E"),
        ("1073741824", "1073741824"),
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("1.5Gi", "1536Mi"),
        ("1536Mi", "1536Mi"),
        ("307200Ki", "300Mi"),
        ("0.5Ki", "512"),
        ("1.5Ki", "1536"),
        ("1025Ki", "1025Ki"),
        ("-2Ki", "-2Ki"),
        ("100.035Ki", "102435840m"),
        (".001Ki", "1024m"),
        (".000000001Ki", "1024n"),
        ("7Ei", "7Ei"),
        ("1e3", "1e3"),
        ("1E3", "1e3"),
        ("1.5e-3", "1500e-6"),
        ("1e-9", "1e-9"),
        ("80e-3", "80e-3"),
        ("0.3e9", "300e6"),
        ("1.5e3", "1500"),
        ("-1e3", "-1e3"),
    ],
)
def test_canonical_text(text: str, canonical: str) -> None:
    assert str(P(text)) == canonical
    assert format_quantity(P(text)) == canonical


@pytest.mark.parametrize(
    ("value", "fmt", "canonical"),
    [
        (Decimal(6 * 1024), BIN, "6Ki"),
        (Decimal(5), BIN, "5"),
        (Decimal("0.5"), BIN, "500m"),
        (Decimal(1025), BIN, "1025"),
        (Decimal(-1024), BIN, "-1Ki"),
        (Decimal(1001 * GI), BIN, "1001Gi"),
        # Kubernetes prints "2000" here, which it then reads back as DecimalSI "2k".
        (Decimal(2000), BIN, "2k"),
        (Decimal("1e9"), EXP, "1e9"),
        (Decimal("1e-3"), EXP, "1e-3"),
        (Decimal("300e6"), EXP, "300e6"),
        (Decimal("1e12"), DEC, "1T"),
        (Decimal("1234567e6"), DEC, "1234567M"),
        (Decimal("1.234567e3"), BIN, "1234567m"),
        (Decimal(0), EXP, "0"),
    ],
)
def test_canonical_text_of_constructed_quantities(
    value: Decimal, fmt: QuantityFormat, canonical: str
) -> None:
    assert str(Quantity(value, fmt)) == canonical


# --- arithmetic -------------------------------------------------------------------------------


def test_halving_a_limit_gives_a_request() -> None:
    assert P("1Gi") / 2 == P("512Mi")
    assert str(P("1Gi") / 2) == "512Mi"
    assert str(P("1") / 2) == "500m"
    assert str(P("500m") / Decimal(2)) == "250m"
    assert str(P("1n") / 2) == "1n"
    assert str(P("1") / 3) == "333333334n"
    assert str(P("-1") / 3) == "-333333334n"


def test_multiplying_keeps_the_format() -> None:
    assert str(P("512Mi") * 2) == "1Gi"
    assert str(3 * P("100m")) == "300m"
    assert str(P("1e3") * Decimal("0.5")) == "500"
    assert (P("1e3") * 2).format is EXP
    assert P("1") * Decimal("1e-999999999") == P("1n")
    with pytest.raises(InvalidQuantityError, match="too large"):
        P("1n") * Decimal("1e999999999")
    with pytest.raises(InvalidQuantityError, match="too large"):
        P("4Ei") * 2


def test_adding_and_subtracting() -> None:
    assert P("1Gi") + P("1") == P("1073741825")
    assert (P("0") + P("1Gi")).format is BIN
    assert (P("1Gi") + P("0")).format is BIN
    assert str(P("0") - P("100m")) == "-100m"
    assert str(P("1") - P("250m")) == "750m"
    assert str(-P("1Ki")) == "-1Ki"


def test_arithmetic_refuses_what_it_cannot_do_exactly() -> None:
    q = P("1")
    with pytest.raises(TypeError):
        q * 0.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        q / True
    with pytest.raises(TypeError):
        q + 1  # type: ignore[operator]
    with pytest.raises(ZeroDivisionError, match="by zero"):
        q / 0
    with pytest.raises(ValueError, match="finite"):
        q * Decimal("NaN")


def test_comparison_with_other_types() -> None:
    assert P("1") != 1
    assert P("1") != "1"
    with pytest.raises(TypeError):
        assert P("1") < 2  # type: ignore[operator]
    assert len({P("0.5"), P("500m"), P("1Gi"), P("1073741824")}) == 2


# --- laws -------------------------------------------------------------------------------------

MAX_NANOS = MAX_MAGNITUDE * 10**9
_DECIMAL_MULTIPLIERS = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12}
_DECIMAL_MULTIPLIERS |= {"P": 15, "E": 18}
_BINARY_MULTIPLIERS = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}


def _from_nanos(nanos: int) -> Decimal:
    return Decimal(f"{nanos}e-9")


nanos_values = st.one_of(
    st.integers(-MAX_NANOS, MAX_NANOS),
    st.integers(-(10**15), 10**15),
    st.integers(-(2**20), 2**20).map(lambda n: n * 1024**3 * 10**9),
    st.integers(-1000, 1000).map(lambda n: n * 10**9),
)
quantities = st.builds(
    lambda nanos, fmt: Quantity(_from_nanos(nanos), fmt),
    nanos_values,
    st.sampled_from(list(QuantityFormat)),
)


@st.composite
def quantity_texts(draw: st.DrawFn) -> tuple[str, Fraction]:
    """A text in the grammar, with its exact value worked out independently of the parser."""
    sign = draw(st.sampled_from(["", "+", "-"]))
    whole = draw(st.from_regex(r"[0-9]{0,12}", fullmatch=True))
    fraction = draw(st.one_of(st.none(), st.from_regex(r"[0-9]{0,12}", fullmatch=True)))
    if not whole and not fraction:
        whole = "7"
    number = whole + ("" if fraction is None else "." + fraction)
    exact = Fraction(int(whole or "0")) + Fraction(int(fraction or "0"), 10 ** len(fraction or ""))
    kind = draw(st.sampled_from(["decimal", "binary", "exponent"]))
    if kind == "decimal":
        suffix = draw(st.sampled_from(sorted(_DECIMAL_MULTIPLIERS)))
        exact *= Fraction(10) ** _DECIMAL_MULTIPLIERS[suffix]
    elif kind == "binary":
        suffix = draw(st.sampled_from(sorted(_BINARY_MULTIPLIERS)))
        exact *= 1024 ** _BINARY_MULTIPLIERS[suffix]
    else:
        power = draw(st.integers(-20, 20))
        letter = draw(st.sampled_from(["e", "E"]))
        plus = "+" if power >= 0 and draw(st.booleans()) else ""
        suffix = f"{letter}{plus}{power}"
        exact *= Fraction(10) ** power
    return sign + number + suffix, -exact if sign == "-" else exact


def _rounded_away(exact: Fraction) -> Fraction:
    nanos = math.ceil(abs(exact) * 10**9)
    return Fraction(nanos if exact >= 0 else -nanos, 10**9)


@settings(max_examples=300)
@given(quantities)
def test_canonical_text_reads_back_as_itself(q: Quantity) -> None:
    text = str(q)
    again = Quantity.parse(text)
    assert again == q
    assert str(again) == text
    assert hash(again) == hash(q)


@settings(max_examples=300)
@given(quantity_texts())
def test_parse_matches_an_independent_reading(case: tuple[str, Fraction]) -> None:
    text, exact = case
    if abs(exact) > MAX_MAGNITUDE:
        with pytest.raises(InvalidQuantityError, match="too large"):
            Quantity.parse(text)
        return
    q = Quantity.parse(text)
    assert Fraction(q.value) == _rounded_away(exact)
    assert Quantity.parse(str(q)) == q
    assert str(Quantity.parse(str(q))) == str(q)


@settings(max_examples=200)
@given(st.integers(-(10**15), 10**15))
def test_millis_are_thousandths(n: int) -> None:
    q = Quantity.parse(f"{n}m")
    assert Fraction(q.value) == Fraction(n, 1000)
    assert q == Quantity.parse(_from_nanos(n * 10**6))


@settings(max_examples=200)
@given(quantities, quantities)
def test_ordering_follows_the_values(a: Quantity, b: Quantity) -> None:
    assert (a < b) == (a.value < b.value)
    assert (a <= b) == (a.value <= b.value)
    assert (a > b) == (a.value > b.value)
    assert (a >= b) == (a.value >= b.value)
    assert (a == b) == (a.value == b.value)
    if a == b:
        assert hash(a) == hash(b)


@settings(max_examples=200)
@given(quantity_texts(), quantity_texts())
def test_ordering_matches_the_exact_values(
    left: tuple[str, Fraction], right: tuple[str, Fraction]
) -> None:
    (a_text, a_exact), (b_text, b_exact) = left, right
    if max(abs(a_exact), abs(b_exact)) > MAX_MAGNITUDE:
        return
    a_value, b_value = _rounded_away(a_exact), _rounded_away(b_exact)
    a, b = Quantity.parse(a_text), Quantity.parse(b_text)
    assert (a < b) == (a_value < b_value)
    assert (a == b) == (a_value == b_value)


@settings(max_examples=200)
@given(st.integers(-(10**18), 10**18), st.integers(1, 10**6), st.sampled_from(list(QuantityFormat)))
def test_division_rounds_away_from_zero_to_a_nano(nanos: int, k: int, fmt: QuantityFormat) -> None:
    q = Quantity(_from_nanos(nanos), fmt)
    half = q / k
    assert half.format is fmt
    assert Fraction(half.value) == _rounded_away(Fraction(q.value) / k)
    if abs(nanos) * k <= MAX_NANOS:
        assert (q * k) / k == q
