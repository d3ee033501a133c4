"""The stable names of the error classes (the ``type`` of the API's error bodies)."""

from __future__ import annotations

from tjf_core import errors
from tjf_core.errors import ERRORS_BY_TYPE, NotFoundError, TjfError, type_name


def test_names_are_snake_case_without_the_suffix() -> None:
    assert type_name(NotFoundError) == "not_found"
    assert type_name(errors.RuntimeUnavailableError) == "runtime_unavailable"
    assert type_name(TjfError) == "tjf"


def test_every_public_error_class_is_found_by_its_name() -> None:
    public = [getattr(errors, name) for name in errors.__all__]
    classes = {found for found in public if isinstance(found, type) and issubclass(found, TjfError)}
    assert set(ERRORS_BY_TYPE.values()) == classes
    for name, cls in ERRORS_BY_TYPE.items():
        assert type_name(cls) == name
