"""Download links must leave htmx's page-wide boost: a boosted link fetches the file into
the page instead of saving it (the customer import's browser test found this)."""
import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
LINK = re.compile(r"<a\b[^>]*>", re.S)


def test_every_download_link_opts_out_of_the_boost():
    unboosted = []
    for path in TEMPLATES.rglob("*.html"):
        for tag in LINK.findall(path.read_text()):
            if re.search(r"\sdownload[\s>=]", tag) and 'hx-boost="false"' not in tag:
                unboosted.append(f"{path.relative_to(TEMPLATES)}: {tag[:80]}")
    assert unboosted == []
