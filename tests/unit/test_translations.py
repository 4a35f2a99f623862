"""Simplified Chinese is complete: every string shown has a translation."""
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "translations" / "zh_Hans" / "LC_MESSAGES" / "messages.po"
METHODS = [("portal/**.py", "python"), ("templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None,
            "_l": None, "pgettext": ((1, "c"), 2), "lazy_pgettext": ((1, "c"), 2),
            "lazy_ngettext": (1, 2)}


def _catalog():
    with CATALOG.open("rb") as f:
        return read_po(f)


def test_every_entry_is_translated_and_none_is_fuzzy():
    missing = [m.id for m in _catalog() if m.id and (
        m.fuzzy or not (all(m.string) if isinstance(m.string, tuple) else m.string))]
    assert missing == []


def test_every_string_in_the_code_is_in_the_catalog():
    known = {(m.id if isinstance(m.id, str) else m.id[0], m.context)
             for m in _catalog() if m.id}
    in_code = set()
    for _file, _line, message, _comments, context in extract_from_dir(
            str(ROOT), method_map=METHODS, keywords=KEYWORDS):
        in_code.add((message if isinstance(message, str) else message[0], context))
    assert len(in_code) > 100  # the extractor really read the code and the templates
    assert sorted(in_code - known) == []


def test_placeholders_survive_translation():
    import re

    pattern = re.compile(r"%\(\w+\)[sd]")
    for m in _catalog():
        if not m.id:
            continue
        source = m.id if isinstance(m.id, str) else m.id[0]
        target = m.string if isinstance(m.string, str) else m.string[0]
        assert set(pattern.findall(source)) == set(pattern.findall(target)), source
