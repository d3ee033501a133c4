"""The image catalog: which container images a job may run, and under which names.

Toolforge publishes its images as a YAML document (``images-v1.yaml`` in the ``image-config``
ConfigMap), keyed by short name. Users name an image by its short name (``python3.11``), by an
alias (``tf-python311``) or by its full URL; objects made by older tools only carry the URL, so
reading them back needs the reverse lookup too. The catalog has lived in two eras: the old one
nests the URL under ``variants.jobs-framework.image`` (one entry serves several frameworks), the
new one has a top-level ``image``. Both are read here; fetching and refreshing the document is
the edges' business, this module only parses and answers questions about it.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping

import attrs
import yaml

from tjf_core.errors import InvalidCatalogError, Problem, UnknownImageError

__all__ = ["Image", "ImageCatalog", "ImageState"]

#: The key under ``variants`` that holds what the jobs framework runs.
_JOBS_VARIANT = "jobs-framework"


class ImageState(enum.Enum):
    """Whether an image is offered to new jobs (stable) or only kept running (deprecated)."""

    STABLE = "stable"
    DEPRECATED = "deprecated"


@attrs.frozen
class Image:
    """One catalog entry: the short name users type and the URL Kubernetes pulls."""

    shortname: str
    url: str
    state: ImageState
    aliases: tuple[str, ...] = ()


@attrs.frozen
class ImageCatalog:
    """The images a job may run, in document order."""

    images: tuple[Image, ...]

    @classmethod
    def from_yaml(cls, text: str) -> ImageCatalog:
        """Parse the catalog document; any problem is an :class:`InvalidCatalogError`."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            # The YAML error already says where (line and column); keep it whole.
            raise InvalidCatalogError([Problem("", f"not valid YAML: {exc}")]) from exc
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: object) -> ImageCatalog:
        """Build the catalog from already parsed data, reporting every problem at once.

        Problem paths start with the short name (``python3.11.variants``).
        """
        if not isinstance(data, Mapping):
            raise InvalidCatalogError(
                [
                    Problem(
                        "",
                        "the catalog must be a mapping of short names to images, "
                        f"got {_kind(data)}",
                    )
                ]
            )
        problems: list[Problem] = []
        shortnames = {key for key in data if isinstance(key, str)}
        alias_owner: dict[str, str] = {}
        images: list[Image] = []
        for key, entry in data.items():
            if not isinstance(key, str):
                # YAML turns unquoted `3.11:` into a float; saying so saves a puzzled operator.
                problems.append(
                    Problem(
                        str(key),
                        f"short name must be a string, got {_kind(key)}: quote it in the YAML",
                    )
                )
                continue
            if not isinstance(entry, Mapping):
                problems.append(
                    Problem(
                        key,
                        "must be a mapping with state, aliases and image "
                        f"(or variants.{_JOBS_VARIANT}.image), got {_kind(entry)}",
                    )
                )
                continue
            state = _read_state(key, entry, problems)
            aliases = _read_aliases(key, entry, problems)
            for index, alias in enumerate(aliases):
                path = f"{key}.aliases[{index}]"
                if alias in shortnames and alias != key:
                    problems.append(
                        Problem(path, f'alias "{alias}" is already the short name of an image')
                    )
                elif alias in alias_owner:
                    problems.append(
                        Problem(
                            path, f'alias "{alias}" is already an alias of {alias_owner[alias]}'
                        )
                    )
                else:
                    alias_owner[alias] = key
            url = _read_url(key, entry, problems)
            if url is not None and state is not None:
                images.append(Image(shortname=key, url=url, state=state, aliases=aliases))
        if problems:
            raise InvalidCatalogError(problems, summary="invalid image catalog")
        return cls(images=tuple(images))

    def resolve(self, name: str) -> Image:
        """The image called ``name``: a short name, an alias or a full image URL.

        A URL matches with or without its tag; the catalog's own URL (and tag) is what runs.
        """
        for image in self.images:
            if image.shortname == name:
                return image
        for image in self.images:
            if name in image.aliases:
                return image
        found = self.find_by_url(name)
        if found is not None:
            return found
        raise UnknownImageError([Problem("image", self._unknown_message(name))])

    def find_by_url(self, url: str) -> Image | None:
        """The image whose URL is ``url`` (tags ignored when nothing matches exactly)."""
        for image in self.images:
            if image.url == url:
                return image
        repository = _repository(url)
        # Different tags of one repository may be different images; then only an exact
        # match can tell which one was meant.
        matches = [image for image in self.images if _repository(image.url) == repository]
        if len(matches) == 1:
            return matches[0]
        return None

    def stable(self) -> list[Image]:
        """The images offered to new jobs, sorted by short name."""
        return sorted(
            (image for image in self.images if image.state is ImageState.STABLE),
            key=lambda image: image.shortname,
        )

    def _unknown_message(self, name: str) -> str:
        offered = ", ".join(image.shortname for image in self.stable())
        hint = "see `toolforge-jobs images`"
        if offered:
            usage = f"use one of {offered} ({hint})"
        else:
            usage = f"the catalog offers no images ({hint})"
        suggestion = self._closest(name)
        if suggestion is not None:
            return f'"{name}" is not a known image: did you mean {suggestion}? Or {usage}'
        return f'"{name}" is not a known image: {usage}'

    def _closest(self, name: str) -> str | None:
        """The short name of the image whose name is closest to ``name``, if close enough."""
        by_name: dict[str, str] = {}
        for image in self.images:
            by_name.setdefault(image.shortname, image.shortname)
            for alias in image.aliases:
                by_name.setdefault(alias, image.shortname)
        # 0.75 catches typos and case slips ("pyton3.11", "Python3.11") without matching
        # every short name that merely shares a language prefix.
        close = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.75)
        return by_name[close[0]] if close else None


def _read_state(
    key: str, entry: Mapping[object, object], problems: list[Problem]
) -> ImageState | None:
    raw = entry.get("state", ImageState.STABLE.value)
    if raw is None:
        return ImageState.STABLE
    for state in ImageState:
        if raw == state.value:
            return state
    problems.append(
        Problem(f"{key}.state", f"{_show(raw)} is not an image state: use stable or deprecated")
    )
    return None


def _read_aliases(
    key: str, entry: Mapping[object, object], problems: list[Problem]
) -> tuple[str, ...]:
    raw = entry.get("aliases")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(Problem(f"{key}.aliases", f"must be a list of names, got {_kind(raw)}"))
        return ()
    aliases: list[str] = []
    for index, alias in enumerate(raw):
        if isinstance(alias, str) and alias:
            aliases.append(alias)
        else:
            problems.append(
                Problem(
                    f"{key}.aliases[{index}]",
                    f"must be a non-empty string, got {_show(alias)}",
                )
            )
    return tuple(aliases)


def _read_url(key: str, entry: Mapping[object, object], problems: list[Problem]) -> str | None:
    """The jobs image URL of an entry; None when it is not a job image or is malformed."""
    top = None
    if "image" in entry:
        top = _check_url(f"{key}.image", entry["image"], problems)
        if top is None:
            return None
    if "variants" not in entry:
        if top is None:
            problems.append(
                Problem(key, f"has no image: give image or variants.{_JOBS_VARIANT}.image")
            )
        return top
    variants = entry["variants"]
    if not isinstance(variants, Mapping):
        problems.append(
            Problem(
                f"{key}.variants", f"must be a mapping of framework names, got {_kind(variants)}"
            )
        )
        return None
    if _JOBS_VARIANT not in variants:
        if top is None and not variants:
            problems.append(
                Problem(f"{key}.variants", f"is empty: give variants.{_JOBS_VARIANT}.image")
            )
        # Variants for other frameworks only (webservice, buildpacks): not a job image.
        return top
    variant = variants[_JOBS_VARIANT]
    path = f"{key}.variants.{_JOBS_VARIANT}"
    if not isinstance(variant, Mapping):
        problems.append(Problem(path, f"must be a mapping with image, got {_kind(variant)}"))
        return None
    if "image" not in variant:
        problems.append(Problem(f"{path}.image", "is missing: give the image URL"))
        return None
    nested = _check_url(f"{path}.image", variant["image"], problems)
    if nested is None:
        return None
    if top is not None and top != nested:
        problems.append(
            Problem(
                f"{key}.image",
                f'"{top}" differs from {path}.image "{nested}": give one URL, or the same in both',
            )
        )
        return None
    return nested


def _check_url(path: str, raw: object, problems: list[Problem]) -> str | None:
    if not isinstance(raw, str) or not raw:
        problems.append(Problem(path, f"must be an image URL, got {_show(raw)}"))
        return None
    if any(char.isspace() for char in raw):
        problems.append(Problem(path, f'"{raw}" is not an image URL: it contains whitespace'))
        return None
    return raw


def _repository(url: str) -> str:
    """``url`` without its tag or digest (a ``:`` before the last ``/`` is a registry port)."""
    url = url.split("@", 1)[0]
    slash = url.rfind("/")
    colon = url.rfind(":")
    return url[:colon] if colon > slash else url


def _kind(value: object) -> str:
    names = {
        type(None): "nothing",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    return names.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return _kind(value) if value is None or isinstance(value, list | dict) else repr(value)
