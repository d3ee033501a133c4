"""Tests of the image catalog: both document eras, name resolution and malformed documents."""

from __future__ import annotations

import importlib.resources
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_core.errors import InvalidCatalogError, Problem, UnknownImageError
from tjf_core.images import Image, ImageCatalog, ImageState

REGISTRY = "docker-registry.tools.wmflabs.org"

CATALOG_YAML = textwrap.dedent(
    f"""\
    python3.11:
      state: stable
      aliases: [tf-python311]
      image: {REGISTRY}/toolforge-python311-sssd-base:latest
    python3.9:
      state: deprecated
      aliases: [tf-python39]
      variants:
        jobs-framework:
          image: {REGISTRY}/toolforge-python39-sssd-base
        webservice:
          image: {REGISTRY}/toolforge-python39-sssd-web
    php8.2:
      variants:
        jobs-framework:
          image: {REGISTRY}/toolforge-php82-sssd-base:latest
    bookworm:
      aliases: [tf-bookworm-std]
      image: {REGISTRY}/toolforge-bookworm-sssd:latest
    web-only:
      variants:
        webservice:
          image: {REGISTRY}/toolforge-web-only:latest
    """
)


@pytest.fixture(scope="module")
def catalog() -> ImageCatalog:
    return ImageCatalog.from_yaml(CATALOG_YAML)


def catalog_problems(data: object) -> tuple[Problem, ...]:
    with pytest.raises(InvalidCatalogError) as info:
        ImageCatalog.from_mapping(data)
    return info.value.problems


def entry(**fields: object) -> dict[str, object]:
    return {"image": f"{REGISTRY}/toolforge-x:latest", **fields}


# --- parsing ---------------------------------------------------------------------------------


def test_both_url_forms_are_read(catalog: ImageCatalog) -> None:
    assert catalog.images == (
        Image(
            shortname="python3.11",
            url=f"{REGISTRY}/toolforge-python311-sssd-base:latest",
            state=ImageState.STABLE,
            aliases=("tf-python311",),
        ),
        Image(
            shortname="python3.9",
            url=f"{REGISTRY}/toolforge-python39-sssd-base",
            state=ImageState.DEPRECATED,
            aliases=("tf-python39",),
        ),
        Image(
            shortname="php8.2",
            url=f"{REGISTRY}/toolforge-php82-sssd-base:latest",
            state=ImageState.STABLE,
        ),
        Image(
            shortname="bookworm",
            url=f"{REGISTRY}/toolforge-bookworm-sssd:latest",
            state=ImageState.STABLE,
            aliases=("tf-bookworm-std",),
        ),
    )


def test_entries_for_other_frameworks_only_are_skipped(catalog: ImageCatalog) -> None:
    assert "web-only" not in {image.shortname for image in catalog.images}


def test_state_defaults_to_stable_and_null_aliases_mean_none() -> None:
    catalog = ImageCatalog.from_mapping({"a": entry(aliases=None)})
    assert catalog.images[0].state is ImageState.STABLE
    assert catalog.images[0].aliases == ()


def test_both_forms_in_one_entry_must_agree() -> None:
    url = f"{REGISTRY}/toolforge-x:latest"
    same = {"a": {"image": url, "variants": {"jobs-framework": {"image": url}}}}
    assert ImageCatalog.from_mapping(same).images[0].url == url
    different = {"a": {"image": url, "variants": {"jobs-framework": {"image": url + "2"}}}}
    (problem,) = catalog_problems(different)
    assert problem.path == "a.image"
    assert "differs from a.variants.jobs-framework.image" in problem.message


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    catalog = ImageCatalog.from_mapping({"a": entry(description="new field", extra=[1])})
    assert catalog.images[0].shortname == "a"


def test_empty_mapping_is_an_empty_catalog() -> None:
    catalog = ImageCatalog.from_yaml("{}")
    assert catalog.images == ()
    assert catalog.stable() == []


def test_sample_catalog_parses() -> None:
    resource = importlib.resources.files("tjf_core") / "data" / "images.yaml"
    catalog = ImageCatalog.from_yaml(resource.read_text(encoding="utf-8"))
    names = [image.shortname for image in catalog.stable()]
    assert names == sorted(names)
    assert {"python3.11", "php8.2", "node18", "jdk17", "golang1.21", "ruby3.1"} <= set(names)
    assert {"bookworm", "perl5.36"} <= set(names)
    assert "python3.9" not in names
    assert catalog.resolve("python3.9").state is ImageState.DEPRECATED
    assert catalog.resolve("tf-bookworm-std").shortname == "bookworm"
    assert all(image.url.startswith(f"{REGISTRY}/toolforge-") for image in catalog.images)
    # The webservice-only entry is not a job image.
    assert "php8.2-web" not in {image.shortname for image in catalog.images}


# --- malformed documents ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ([1, 2], "", "must be a mapping of short names"),
        (None, "", "got nothing"),
        ({3.11: entry()}, "3.11", "short name must be a string"),
        ({"a": "not a mapping"}, "a", "must be a mapping with state"),
        ({"a": entry(state="beta")}, "a.state", '"beta" is not an image state'),
        ({"a": entry(state=1)}, "a.state", "use stable or deprecated"),
        ({"a": entry(aliases="tf-a")}, "a.aliases", "must be a list of names"),
        ({"a": entry(aliases=["tf-a", 7])}, "a.aliases[1]", "must be a non-empty string"),
        ({"a": entry(aliases=[""])}, "a.aliases[0]", "must be a non-empty string"),
        ({"a": {"state": "stable"}}, "a", "has no image"),
        ({"a": entry(image=None)}, "a.image", "must be an image URL, got nothing"),
        ({"a": entry(image="a b")}, "a.image", "contains whitespace"),
        ({"a": {"variants": "x"}}, "a.variants", "must be a mapping of framework names"),
        ({"a": {"variants": {}}}, "a.variants", "is empty"),
        (
            {"a": {"variants": {"jobs-framework": "x"}}},
            "a.variants.jobs-framework",
            "must be a mapping with image",
        ),
        (
            {"a": {"variants": {"jobs-framework": {}}}},
            "a.variants.jobs-framework.image",
            "is missing",
        ),
        (
            {"a": {"variants": {"jobs-framework": {"image": 5}}}},
            "a.variants.jobs-framework.image",
            "must be an image URL, got 5",
        ),
    ],
)
def test_malformed_documents_name_the_path(data: object, path: str, fragment: str) -> None:
    (problem,) = catalog_problems(data)
    assert problem.path == path
    assert fragment in problem.message


def test_duplicate_alias_is_refused() -> None:
    (problem,) = catalog_problems({"a": entry(aliases=["x"]), "b": entry(aliases=["y", "x"])})
    assert problem == Problem("b.aliases[1]", 'alias "x" is already an alias of a')


def test_alias_equal_to_another_short_name_is_refused() -> None:
    (problem,) = catalog_problems({"a": entry(), "b": entry(aliases=["a"])})
    assert problem.path == "b.aliases[0]"
    assert 'alias "a" is already the short name' in problem.message


def test_alias_equal_to_its_own_short_name_is_harmless() -> None:
    catalog = ImageCatalog.from_mapping({"a": entry(aliases=["a"])})
    assert catalog.resolve("a").shortname == "a"


def test_every_problem_is_reported_at_once() -> None:
    problems = catalog_problems({"a": entry(state="x"), "b": {"variants": {}}, "c": 1})
    assert [problem.path for problem in problems] == ["a.state", "b.variants", "c"]


def test_invalid_yaml_is_a_catalog_error() -> None:
    with pytest.raises(InvalidCatalogError, match="not valid YAML"):
        ImageCatalog.from_yaml("a: [unclosed")


def test_catalog_error_is_a_bad_request() -> None:
    with pytest.raises(InvalidCatalogError) as info:
        ImageCatalog.from_yaml("- 1")
    assert info.value.http_status == 400


# --- resolution ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shortname"),
    [
        ("python3.11", "python3.11"),
        ("tf-python311", "python3.11"),
        (f"{REGISTRY}/toolforge-python311-sssd-base:latest", "python3.11"),
        (f"{REGISTRY}/toolforge-python311-sssd-base", "python3.11"),
        (f"{REGISTRY}/toolforge-python39-sssd-base", "python3.9"),
        (f"{REGISTRY}/toolforge-python39-sssd-base:latest", "python3.9"),
        (f"{REGISTRY}/toolforge-php82-sssd-base:latest", "php8.2"),
        ("tf-python39", "python3.9"),
        ("bookworm", "bookworm"),
    ],
)
def test_resolve_by_short_name_alias_or_url(
    catalog: ImageCatalog, name: str, shortname: str
) -> None:
    assert catalog.resolve(name).shortname == shortname


def test_deprecated_images_still_resolve(catalog: ImageCatalog) -> None:
    assert catalog.resolve("python3.9").state is ImageState.DEPRECATED


def test_unknown_image_lists_the_stable_images(catalog: ImageCatalog) -> None:
    with pytest.raises(UnknownImageError) as info:
        catalog.resolve("cobol")
    assert info.value.problems == (
        Problem(
            "image",
            '"cobol" is not a known image: use one of bookworm, php8.2, python3.11 '
            "(see `toolforge-jobs images`)",
        ),
    )
    assert info.value.http_status == 400


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("pyton3.11", "python3.11"), ("Python3.11", "python3.11"), ("tf-python-311", "python3.11")],
)
def test_unknown_image_suggests_the_closest_name(
    catalog: ImageCatalog, typo: str, suggestion: str
) -> None:
    with pytest.raises(UnknownImageError, match=f"did you mean {suggestion}\\?"):
        catalog.resolve(typo)


def test_unknown_image_in_empty_catalog() -> None:
    with pytest.raises(UnknownImageError, match="the catalog offers no images"):
        ImageCatalog(images=()).resolve("python3.11")


def test_find_by_url_for_reading_old_objects(catalog: ImageCatalog) -> None:
    found = catalog.find_by_url(f"{REGISTRY}/toolforge-python39-sssd-base")
    assert found is not None
    assert found.shortname == "python3.9"
    assert catalog.find_by_url(f"{REGISTRY}/toolforge-unknown:latest") is None
    # A short name is not a URL.
    assert catalog.find_by_url("python3.11") is None


def test_url_tags_are_only_ignored_when_unambiguous() -> None:
    catalog = ImageCatalog.from_mapping(
        {"a": {"image": "registry:5000/img:1"}, "b": {"image": "registry:5000/img:2"}}
    )
    assert catalog.resolve("registry:5000/img:2").shortname == "b"
    assert catalog.find_by_url("registry:5000/img") is None
    assert catalog.find_by_url("registry:5000/img:3") is None
    single = ImageCatalog.from_mapping({"a": {"image": "registry:5000/img"}})
    # The registry port is not a tag.
    assert single.find_by_url("registry:5000/img@sha256:abc") == single.images[0]
    assert single.find_by_url("registry:5001/img") is None


def test_stable_is_sorted_and_excludes_deprecated(catalog: ImageCatalog) -> None:
    assert [image.shortname for image in catalog.stable()] == ["bookworm", "php8.2", "python3.11"]


names = st.from_regex(r"[a-z][a-z0-9.-]{0,15}", fullmatch=True)


@settings(max_examples=200)
@given(st.dictionaries(names, st.tuples(st.booleans(), st.lists(names, max_size=2)), max_size=6))
def test_every_image_resolves_to_itself_by_each_name(
    spec: dict[str, tuple[bool, list[str]]],
) -> None:
    data: dict[str, object] = {}
    used = set(spec)
    for shortname, (stable, aliases) in spec.items():
        fresh = [alias for alias in dict.fromkeys(aliases) if alias not in used]
        used.update(fresh)
        data[shortname] = {
            "state": "stable" if stable else "deprecated",
            "aliases": fresh,
            "image": f"{REGISTRY}/toolforge-{shortname}:latest",
        }
    catalog = ImageCatalog.from_mapping(data)
    assert len(catalog.images) == len(spec)
    for image in catalog.images:
        for name in (image.shortname, image.url, *image.aliases):
            assert catalog.resolve(name) == image
        assert (image in catalog.stable()) == (image.state is ImageState.STABLE)
