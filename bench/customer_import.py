"""The customer import of a generated 100,000-row workbook, end to end, against parsing the
same file with python-calamine alone; and the import's peak memory.

The import runs in a child process on a fresh SQLite database (the service: upload checks,
storing the file, the job reading, checking and writing every row), so its peak resident
memory is the child's own high-water mark (VmHWM in /proc/self/status, read by the child
as it ends), Python and the app included. Half the rows are members with cards.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = 100_000
HEADER = ["Mobile", "Name", "Type", "Card plan", "Tier", "Email", "Date of birth", "Gender",
          "Address", "ID number", "Favourite drink"]


def generate(path: Path, rows: int = ROWS) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet()
    for c, title in enumerate(HEADER):
        sheet.write_string(0, c, title)
    domains = ("qq.com", "163.com", "example.com", "gmail.com")
    for i in range(rows):
        member = i % 2 == 1
        values = [f"139{i:08d}", f"Customer {i}", "Member" if member else "Customer",
                  "Gold Card" if member else "", "VIP" if member and i % 10 == 1 else "",
                  f"user{i}@{domains[i % 4]}", f"19{60 + i % 40}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                  ("female", "male", "other")[i % 3], f"{i} Nanjing Road, Shanghai",
                  f"A{i:08d}" if i % 5 == 0 else "", ("Latte", "Tea", "Mocha")[i % 3]]
        for c, value in enumerate(values):
            if value:
                sheet.write_string(i + 1, c, value)
    book.close()


def parse_seconds(path: Path) -> float:
    from python_calamine import CalamineWorkbook

    def once() -> float:
        start = time.perf_counter()
        sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
        for _row in sheet.iter_rows():
            pass
        return time.perf_counter() - start

    return min(once() for _ in range(3))


def _child(path: str, folder: str) -> None:
    """Import `path` into a fresh database in `folder`; print the seconds it took."""
    os.environ.setdefault("TESSERA_ENV", "test")
    from alembic import command

    from portal import create_app
    from portal.cli import alembic_config
    from portal.db import db, transaction
    from portal.imports import customers
    from portal.imports.models import CustomerImport
    from portal.members.models import CardPlan, CustomAttribute, Tier

    url = f"sqlite:///{folder}/import.db"
    app = create_app({"ENV": "test", "DATABASE_URL": url, "WTF_CSRF_ENABLED": False,
                      "UPLOAD_DIR": folder})
    with app.app_context():
        command.upgrade(alembic_config(url), "head")
        session = db.session
        with transaction(session):
            plan = CardPlan(name="Gold Card", currency="CNY", validity_days=None,
                            is_default=True)
            session.add(plan)
            session.flush()
            session.add_all([Tier(plan_id=plan.id, name="Classic", rank=0),
                             Tier(plan_id=plan.id, name="VIP", rank=1, threshold=100,
                                  rule="accumulated"),
                             CustomAttribute(key="drink", name="Favourite drink",
                                             kind="text")])
        start = time.perf_counter()
        with open(path, "rb") as upload:
            run = customers.start(session, upload, filename="customers.xlsx",
                                  policy="skip", operator_id=None)
        seconds = time.perf_counter() - start
        session.expire_all()
        run = session.get(CustomerImport, run.id)
        print(json.dumps({"seconds": seconds, "status": run.status,
                          "imported": run.imported, "failed": run.failed,
                          "peak_kb": _own_peak_kb()}))


def _own_peak_kb() -> int | None:
    """This process's own peak resident memory (VmHWM). RUSAGE_CHILDREN in the parent is
    the largest of all its children, and a child forked from a parent that has already
    built 200,000-row benchmarks starts out counting the parent's pages."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def measure() -> tuple[float, float, dict]:
    folder = tempfile.mkdtemp(prefix="tessera-import-bench-")
    path = Path(folder) / "customers-100k.xlsx"
    generate(path)
    parsed = parse_seconds(path)
    child = subprocess.run([sys.executable, "-m", "bench.customer_import", "child", str(path),
                            folder], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parent.parent)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["status"] == "done" and result["imported"] == ROWS, result
    # The child's own high-water mark; ru_maxrss of the children (kilobytes on Linux) only
    # where /proc is missing.
    peak_kb = result.get("peak_kb") or resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak_mb = peak_kb / 1024
    return result["seconds"] / parsed, peak_mb, {"import_s": result["seconds"],
                                                 "parse_s": parsed}


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child(sys.argv[2], sys.argv[3])
    else:
        ratio, peak, detail = measure()
        print(f"import_ratio.customers_100k: {ratio:.2f}")
        print(f"peak_rss_mb.import_100k: {peak:.0f}")
        print(detail)
