"""The gettext catalogue: the .pot is current, every .po is complete and compiled, Russian reads right."""

from __future__ import annotations

import io
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from queue_gateway.public import texts

ROOT = Path(__file__).resolve().parents[2]
POT = texts.LOCALES / f"{texts.DOMAIN}.pot"
PO_FILES = sorted(texts.LOCALES.glob(f"*/LC_MESSAGES/{texts.DOMAIN}.po"))
LANGS = [po.parent.parent.name for po in PO_FILES]
RU_PLURAL = "(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2)"

Key = tuple[str | None, str | tuple[str, ...]]
Field = tuple[str, str | None, str | None]


def _read(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f)


def _messages(catalog: Catalog) -> dict[Key, Any]:
    """(msgctxt, msgid or (singular, plural)) → the message, header left out."""
    return {(m.context, m.id if isinstance(m.id, str) else tuple(m.id)): m for m in catalog if m.id}


def _fields(text: str) -> set[Field]:
    """The str.format fields of ``text``: name, format spec and conversion."""
    return {(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(text) if name is not None}


def _msgid_fields(msgid: str | tuple[str, ...]) -> set[Field]:
    return set().union(*(_fields(s) for s in ([msgid] if isinstance(msgid, str) else msgid)))


def _forms(string_: str | tuple[str, ...]) -> tuple[str, ...]:
    return (string_,) if isinstance(string_, str) else tuple(string_)


def _ru_form(n: int) -> int:
    """The brief's Plural-Forms, in Python: 0 one, 1 few, 2 many."""
    if n % 10 == 1 and n % 100 != 11:
        return 0
    return 1 if 2 <= n % 10 <= 4 and (n % 100 < 10 or n % 100 >= 20) else 2


def _dummy(fields: set[Field]) -> dict[str, Any]:
    """A value for every placeholder; a float satisfies every spec used here (none, ``.1f``, ``.0%``)."""
    return {name: 0.25 for name, _, _ in fields}


# --- the template -----------------------------------------------------------------------------------------------


def test_pot_is_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extracting again, with the mapping in pyproject.toml, gives the committed .pot's msgids and contexts."""
    monkeypatch.chdir(ROOT)  # the mapping's pattern is relative to the repository root
    fresh_pot = tmp_path / "fresh.pot"
    source = str(Path(texts.__file__).relative_to(ROOT))
    argv = ["pybabel", "-q", "extract", "-F", "pyproject.toml", "-o", str(fresh_pot), source]
    CommandLineInterface().run(argv)  # type: ignore[no-untyped-call]  # Babel's CLI class has no annotations
    assert set(_messages(_read(fresh_pot))) == set(_messages(_read(POT))), "run the extract in docs/translating.md"


def test_every_message_in_texts_is_in_the_pot() -> None:
    """Each marker holds literals pybabel can see, so nothing texts.py looks up is missing from the template."""
    pot = set(_messages(_read(POT)))
    used: set[Key] = {(None, m) for m in texts.MESSAGES.values()}
    used |= {(None, pair) for pair in texts.PLURALS.values()}
    used |= {(ctx, (one, many)) for ctx, one, many in texts.OBJECTS.values()}
    used |= {(ctx, m) for ctx, m in texts.LABELS.values()}
    assert used - pot == set()
    assert pot - used == set()
    assert {name: ("object", name) for name in texts.OBJECTS} == texts.LABELS


def _written_flags(path: Path) -> dict[Key, set[str]]:
    """The ``#,`` flags as the file has them (read_po derives python-brace-format itself, so read the lines)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    written = {}
    for key, message in _messages(_read(path)).items():
        flags: set[str] = set()
        i = message.lineno - 2  # the line above "msgid"
        while i >= 0 and lines[i].startswith(("#", "msgctxt")):
            if lines[i].startswith("#,"):
                flags |= {flag.strip() for flag in lines[i][2:].split(",")}
            i -= 1
        written[key] = flags
    return written


@pytest.mark.parametrize("path", [POT, *PO_FILES], ids=["pot", *LANGS])
def test_braces_carry_python_brace_format(path: Path) -> None:
    """Every msgid with a str.format field is flagged python-brace-format in the file, and only those."""
    flagged = {key for key, flags in _written_flags(path).items() if "python-brace-format" in flags}
    assert flagged == {key for key in _written_flags(path) if _msgid_fields(key[1])}


# --- every language ---------------------------------------------------------------------------------------------


def test_russian_is_a_language() -> None:
    assert "ru" in LANGS
    assert "ru" in texts.languages()
    assert set(texts.languages()) == {texts.DEFAULT_LANGUAGE, *LANGS}


@pytest.mark.parametrize("po_file", PO_FILES, ids=LANGS)
def test_po_translates_every_msgid(po_file: Path) -> None:
    """Every msgid of the .pot has a translation, in every plural form, none fuzzy, with the msgid's own fields."""
    catalog = _read(po_file)
    assert not catalog.fuzzy, "the header is marked fuzzy: pybabel compile would skip the file"
    assert str(catalog.locale) == po_file.parent.parent.name
    pot, po = _messages(_read(POT)), _messages(catalog)
    assert set(po) == set(pot), "run the update command in docs/translating.md"
    problems = []
    for key, message in po.items():
        forms = _forms(message.string)
        if message.fuzzy or not all(forms) or (message.pluralizable and len(forms) != catalog.num_plurals):
            problems.append(("untranslated or fuzzy", key, forms))
        elif any(_fields(form) != _msgid_fields(key[1]) for form in forms):
            problems.append(("placeholders differ", key, forms))
    assert problems == []


def test_russian_plural_forms_header() -> None:
    catalog = _read(texts.LOCALES / "ru" / "LC_MESSAGES" / f"{texts.DOMAIN}.po")
    assert catalog.num_plurals == 3
    assert catalog.plural_expr == RU_PLURAL


@pytest.mark.parametrize("po_file", PO_FILES, ids=LANGS)
def test_mo_matches_po(po_file: Path) -> None:
    """The committed .mo holds what compiling the .po gives now (compare the messages, not the bytes)."""
    compiled = io.BytesIO()
    write_mo(compiled, _read(po_file))
    compiled.seek(0)
    with po_file.with_suffix(".mo").open("rb") as f:
        committed = read_mo(f)
    expected = read_mo(compiled)

    def strings(catalog: Catalog) -> dict[Key, tuple[str, ...]]:
        return {key: _forms(m.string) for key, m in _messages(catalog).items()}

    assert strings(committed) == strings(expected), "run the compile command in docs/translating.md"
    assert committed.plural_forms == expected.plural_forms


# --- Russian, through the public API ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "1 человек"),
        (2, "2 человека"),
        (5, "5 человек"),
        (11, "11 человек"),
        (21, "21 человек"),
        (22, "22 человека"),
    ],
)
def test_russian_count_of_person(n: int, expected: str) -> None:
    assert texts.count_of("person", n, "ru") == expected


def test_russian_plural_rule_through_the_mo() -> None:
    """The compiled catalogue picks one/few/many as the Plural-Forms header says, for n = 0…250."""
    forms = ("{} автобус", "{} автобуса", "{} автобусов")
    for n in range(251):
        assert texts.count_of("bus", n, "ru") == forms[_ru_form(n)].format(n)
    assert [texts.ntext("dlq_header", n, "ru").split(",")[0] for n in (1, 3, 7)] == [
        "1 мёртвое задание",
        "3 мёртвых задания",
        "7 мёртвых заданий",
    ]


def test_russian_caption_and_labels() -> None:
    detections = [{"label": "person"}] * 4 + [{"label": "bus"}]
    assert texts.caption(detections, "ru") == "4 человека, 1 автобус"
    assert texts.caption([], "ru") == texts.text("no_objects", "ru") != texts.text("no_objects", "en")
    assert texts.label("person", "ru") == "человек"
    assert texts.label("traffic light", "ru") == "светофор"
    assert texts.label("not a coco class", "ru") == "not a coco class"


@pytest.mark.parametrize("name", sorted(texts.OBJECTS))
def test_russian_every_class(name: str) -> None:
    """Every class has a Russian label and Russian counts that show the number."""
    assert re.search("[а-яё]", texts.label(name, "ru")), texts.label(name, "ru")
    for n in (1, 3, 5, 21):
        counted = texts.count_of(name, n, "ru")
        assert str(n) in counted and re.search("[а-яё]", counted), counted


def test_language_codes_and_fallback() -> None:
    assert texts.language("ru-RU") == "ru"
    assert texts.language("ru_RU") == "ru"
    assert texts.language("xx-YY") == texts.DEFAULT_LANGUAGE
    assert texts.language(None) == texts.DEFAULT_LANGUAGE
    assert texts.text("no_objects", "xx") == "No objects found."
    assert texts.count_of("person", 2, "xx") == "2 persons"
    assert texts.label("person", "xx") == "person"
    assert texts.text("language_name", "ru") == "Русский"


def _every_text(lang: str) -> Iterator[tuple[str, int | None, str]]:
    for key, msgid in texts.MESSAGES.items():
        yield key, None, texts.text(key, lang, **_dummy(_fields(msgid)))
    for key, pair in texts.PLURALS.items():
        values = _dummy(_msgid_fields(pair))
        values.pop("count", None)
        for n in (0, 1, 2, 5, 11, 21):
            yield key, n, texts.ntext(key, n, lang, **values)


def test_every_text_formats_in_russian() -> None:
    """No KeyError, IndexError or ValueError for any message or plural form, in Russian as in English."""
    english = {(key, n): formatted for key, n, formatted in _every_text("en")}
    russian = {(key, n): formatted for key, n, formatted in _every_text("ru")}
    assert russian.keys() == english.keys()
    assert [key for key, formatted in russian.items() if not formatted.strip()] == []
    assert texts.text("received", "ru") == "Получено — ставлю в очередь…"
    assert texts.queued_text(3, 200, "ru", count=4) == "В очереди 4 фото — №3, ждать примерно 4 мин."
    assert texts.for_error("busy", "ru", retry_after=7) == "Сейчас много работы. Попробуйте ещё раз примерно через 7 с."
