"""Importing customers and members: every row rule, the policies, bad files, resuming."""
from __future__ import annotations

import zipfile
from datetime import date, timedelta
from io import BytesIO

import pytest
import xlsxwriter
from python_calamine import CalamineWorkbook
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal import clock
from portal.db import db, transaction
from portal.imports import customers, xlsx
from portal.imports.models import CustomerImport, CustomerImportFailure, RunStatus
from portal.members.attributes import normalize_mobile
from portal.members.models import CustomAttribute, Member, MemberCard, Tier
from tests.factories import CardPlanFactory, MemberFactory, StaffFactory
from tests.unit.test_xlsx import workbook

HEADER = ["Mobile", "Name", "Type", "Card plan", "Tier", "Email", "Date of birth", "Gender",
          "Address", "ID number"]


def row(mobile="13800138000", name="Li Wei", kind="", plan="", tier="", email="",
        born="", gender="", address="", id_number="", *extra):
    return [mobile, name, kind, plan, tier, email, born, gender, address, id_number, *extra]


@pytest.fixture
def gold(session):
    plan = CardPlanFactory(name="Gold Card", tier="Classic")
    with transaction(session):
        session.add(Tier(plan_id=plan.id, name="VIP", rank=1, threshold=100,
                         rule="accumulated"))
    return plan


@pytest.fixture
def operator():
    return StaffFactory()


def run_import(rows, *, policy="skip", header=HEADER, operator=None, upload=None,
               filename="customers.xlsx") -> CustomerImport:
    run = customers.start(db.session, upload or workbook([header, *rows]), filename=filename,
                          policy=policy, operator_id=operator.id if operator else None)
    db.session.expire_all()
    return db.session.get(CustomerImport, run.id)


def errors(run) -> dict[int, str]:
    return {f.row: f.error for f in customers.failures(db.session, run.id)}


def member_by(mobile: str) -> Member | None:
    db.session.expire_all()
    return db.session.scalar(select(Member).where(Member.mobile == mobile))


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_good_rows_make_customers_and_members_with_cards_in_the_named_tier(gold, operator):
    run = run_import([
        row("13800138000", "Li Wei", "Member", "gold card", "VIP", "Li.Wei@Example.COM",
            "1990-05-31", "Female", "1 Nanjing Road", "A1234567"),
        row("+86 139 0013 9000", "Zhang Min", "Customer"),
        row("137-0013-7000", "Wang Fang", "", "Gold Card"),
    ], operator=operator)
    assert (run.status, run.rows_total, run.imported, run.updated, run.failed) == \
        ("done", 3, 3, 0, 0)
    li = member_by("+8613800138000")
    assert (li.full_name, li.email, li.born_on, li.gender, li.address, li.id_number,
            li.enroll_source, li.mobile_verified) == (
        "Li Wei", "Li.Wei@example.com", date(1990, 5, 31), "female", "1 Nanjing Road",
        "A1234567", "import", False)
    assert li.is_member and [c.tier.name for c in li.cards] == ["VIP"]
    assert li.cards[0].number.isdigit() and len(li.cards[0].number) == 16
    zhang = member_by("+8613900139000")
    assert not zhang.is_member and zhang.cards == []
    wang = member_by("+8613700137000")
    assert wang.is_member and wang.cards[0].tier.name == "Classic"
    assert run.stored_name is None and run.finished_at is not None


def test_rows_split_over_several_statements_keep_their_own_values(gold, monkeypatch):
    """SQLite takes a chunk's rows in as few statements as its variable limit allows;
    with a small limit, each statement still gives every row its values, its constants
    and (for cards) its own member."""
    monkeypatch.setattr(customers, "_sqlite_variables", lambda connection: 23)
    mobiles = [f"1380013{i:04d}" for i in range(9)]
    run = run_import([row(m, f"Name {i}", "Member" if i % 2 else "Customer",
                          born=f"1990-01-{i + 1:02d}") for i, m in enumerate(mobiles)])
    assert (run.imported, run.failed) == (9, 0)
    for i, m in enumerate(mobiles):
        member = member_by("+86" + m)
        assert (member.full_name, member.born_on, member.enroll_source, member.status) == (
            f"Name {i}", date(1990, 1, i + 1), "import", "normal")
        assert [card.member_id for card in member.cards] == ([member.id] if i % 2 else [])
        assert member.is_member == bool(i % 2)


def test_a_card_for_a_number_not_on_file_is_refused_not_dropped(gold, session):
    """Cards name their member by mobile; one that names nobody fails the chunk rather
    than vanish from it."""
    member = MemberFactory()
    tier = session.scalar(select(Tier).where(Tier.plan_id == gold.id, Tier.name == "VIP"))
    with pytest.raises(IntegrityError), transaction(session):
        customers._insert_cards(session, [(member.mobile, gold.id, tier.id),
                                          ("+8613999999999", gold.id, tier.id)], clock.now())
    assert count(MemberCard) == 0


def test_each_bad_value_fails_its_row_and_the_good_rows_still_go_in(gold):
    run = run_import([
        row("12345"),
        row(""),
        row("13800138001", email="not-an-email"),
        row("13800138002", born="31/05/1990"),
        row("13800138003", born=(clock.today() + timedelta(days=1)).isoformat()),
        row("13800138004", gender="robot"),
        row("13800138005", kind="Member", plan="Silver"),
        row("13800138006", kind="Member", plan="Gold Card", tier="Diamond"),
        row("13800138007", kind="Customer", plan="Gold Card"),
        row("13800138008", kind="Friend"),
        row("13800138009", id_number="no spaces allowed"),
        row("13800138010", name="x" * 121),
        row("13800138011", "Good Row"),
    ])
    assert (run.imported, run.failed, run.rows_total) == (1, 12, 13)
    found = errors(run)
    assert "Mobile" in found[2] and "valid mobile" in found[2]
    assert "Mobile: required" in found[3]
    assert "Email" in found[4]
    assert "YYYY-MM-DD" in found[5]
    assert "Date of birth" in found[6]
    assert "Gender" in found[7]
    assert "no card plan called “Silver”" in found[8]
    assert "no tier called “Diamond”" in found[9]
    assert "a customer has no card" in found[10]
    assert "Type" in found[11]
    assert "ID number" in found[12]
    assert "at most 120" in found[13]
    assert member_by("+8613800138011").full_name == "Good Row"
    assert count(Member) == 1


def test_row_with_several_problems_lists_them_all(gold):
    run = run_import([row("12", email="bad", gender="robot")])
    assert errors(run)[2].count(";") == 2


def test_member_without_plan_is_refused_when_there_are_several_plans(gold, plan):
    run = run_import([row("13800138000", kind="Member")])
    assert "required for a member" in errors(run)[2]


def test_member_without_plan_gets_the_only_plan(gold):
    run = run_import([row("13800138000", kind="Member")])
    assert run.imported == 1 and member_by("+8613800138000").cards[0].plan_id == gold.id


def test_duplicate_number_in_file_imports_the_first_row_only(gold):
    run = run_import([row("13800138000", "First"), row("+8613800138000", "Second"),
                      row("138 0013 8000", "Third")])
    assert (run.imported, run.failed) == (1, 2)
    assert "already in row 2" in errors(run)[3] and "already in row 2" in errors(run)[4]
    assert member_by("+8613800138000").full_name == "First"


def test_skip_policy_leaves_customers_on_file_as_they_are(gold):
    MemberFactory(mobile="+8613800138000", full_name="On file", email=None)
    run = run_import([row("13800138000", "New name", email="new@example.com"),
                      row("13800138001", "Someone new")], policy="skip")
    assert (run.imported, run.updated, run.skipped, run.failed) == (1, 0, 1, 0)
    kept = member_by("+8613800138000")
    assert (kept.full_name, kept.email) == ("On file", None)


def test_update_policy_overwrites_given_values_keeps_the_rest_and_issues_a_card(gold):
    with transaction(db.session):
        db.session.add(CustomAttribute(key="drink", name="Favourite drink", kind="text"))
    MemberFactory(mobile="+8613800138000", full_name="On file", address="Old street",
                  custom={"drink": "Tea", "other": "kept"})
    run = run_import([row("13800138000", "New name", "Member", "Gold Card", "VIP",
                          "new@example.com", "", "", "", "", "Latte")],
                     header=[*HEADER, "Favourite drink"], policy="update")
    assert (run.imported, run.updated, run.skipped) == (0, 1, 0)
    m = member_by("+8613800138000")
    assert (m.full_name, m.email, m.address, m.custom) == (
        "New name", "new@example.com", "Old street", {"drink": "Latte", "other": "kept"})
    assert m.is_member and [c.tier.name for c in m.cards] == ["VIP"]


def test_update_policy_does_not_issue_a_second_card_of_the_same_plan(gold):
    existing = MemberFactory(mobile="+8613800138000")
    with transaction(db.session):
        from portal.members.services import issue_card

        issue_card(db.session, db.session.merge(existing), gold)
    run = run_import([row("13800138000", "X", "Member", "Gold Card")], policy="update")
    assert run.updated == 1 and count(MemberCard) == 1


def test_custom_attribute_columns_are_checked_by_kind(gold):
    with transaction(db.session):
        db.session.add_all([CustomAttribute(key="visits", name="Visits", kind="number"),
                            CustomAttribute(key="joined", name="Joined", kind="date")])
    header = [*HEADER, "Visits", "joined"]
    run = run_import([row("13800138000", "A", *[""] * 8, "12", "2020-01-31"),
                      row("13800138001", "B", *[""] * 8, "many", "yesterday")],
                     header=header)
    assert (run.imported, run.failed) == (1, 1)
    assert member_by("+8613800138000").custom == {"visits": "12", "joined": "2020-01-31"}
    assert "Visits" in errors(run)[3] and "Joined" in errors(run)[3]


def test_spaces_around_values_are_ignored_and_blank_cells_are_not_given(gold):
    with transaction(db.session):
        db.session.add_all([CustomAttribute(key="visits", name="Visits", kind="number"),
                            CustomAttribute(key="joined", name="Joined", kind="date")])
    header = [f" {h} " for h in HEADER] + ["Visits", "Joined "]
    run = run_import([
        row(" 13800138000 ", "  Li  Wei ", " Member ", " Gold Card ", " VIP ",
            " li@example.com ", " 1990-05-31 ", " female ", "   ", "  ", " 12 ", "   "),
        [" ", "  ", *[""] * 10],                  # a row of spaces only is no row
        row("13800138001", "Zhang", "", "", "", "", "", "", "", "", " ", " 2020-01-31 "),
    ], header=header)
    assert (run.rows_total, run.imported, run.failed) == (2, 2, 0)
    li = member_by("+8613800138000")
    assert (li.full_name, li.email, li.born_on, li.gender, li.address, li.id_number,
            li.custom) == ("Li Wei", "li@example.com", date(1990, 5, 31), "female", None,
                           None, {"visits": "12"})
    assert li.cards[0].tier.name == "VIP"
    assert member_by("+8613800138001").custom == {"joined": "2020-01-31"}


def test_template_has_the_custom_attribute_columns_and_reads_back(gold):
    with transaction(db.session):
        db.session.add(CustomAttribute(key="drink", name="Favourite drink", kind="text"))
    out = BytesIO()
    xlsx.write(out, customers.template_sheets(customers.custom_attributes(db.session)))
    book = CalamineWorkbook.from_filelike(BytesIO(out.getvalue()))
    first = book.get_sheet_by_index(0).to_python()
    assert first[0] == [*HEADER, "Favourite drink"]
    notes = [r[0] for r in book.get_sheet_by_index(1).to_python()]
    assert any("Favourite drink" in n for n in notes)
    # The example rows from the instructions import as they are.
    example = book.get_sheet_by_index(1).to_python()[-2:]
    run = run_import([[str(v) for v in r] for r in example], header=first[0])
    assert (run.imported, run.failed) == (2, 0)


def test_missing_and_unknown_columns_fail_the_run_with_one_message(gold):
    run = run_import([["13800138000", "x"]], header=["Mobile", "Nickname"])
    assert run.status == RunStatus.FAILED and count(Member) == 0
    assert "missing columns: Name, Type" in run.message and "Nickname" in run.message


def test_failed_rows_file_reimports_after_the_fix(gold):
    run = run_import([row("13800138000", "Good"), row("13800138001", email="bad@")])
    out = BytesIO()
    xlsx.write(out, [customers.failed_sheet(db.session, run)])
    rows = CalamineWorkbook.from_filelike(BytesIO(out.getvalue())).get_sheet_by_index(0)\
        .to_python()
    assert rows[0] == [*HEADER, "Error", "Row"]
    assert rows[1][:2] == ["13800138001", "Li Wei"] and rows[1][-1] == 3
    fixed = [[str(v) for v in rows[0]], [str(v) for v in rows[1]]]
    fixed[1][5] = "fixed@example.com"
    again = run_import(fixed[1:], header=fixed[0])
    assert (again.imported, again.failed) == (1, 0)
    assert member_by("+8613800138001").email == "fixed@example.com"


def test_text_that_looks_like_a_formula_is_stored_as_text_and_exported_safely(gold):
    run = run_import([row("13800138000", "=HYPERLINK(\"http://x\")"),
                      row("13800138001", "=1+1", email="bad")])
    assert member_by("+8613800138000").full_name == '=HYPERLINK("http://x")'
    out = BytesIO()
    xlsx.write(out, [customers.failed_sheet(db.session, run)])
    rows = CalamineWorkbook.from_filelike(BytesIO(out.getvalue())).get_sheet_by_index(0)\
        .to_python()
    assert rows[1][1] == "'=1+1"


def test_a_formula_cell_refuses_the_upload(gold):
    out = BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet()
    for c, title in enumerate(HEADER):
        sheet.write_string(0, c, title)
    sheet.write_string(1, 0, "13800138000")
    sheet.write_formula(1, 1, '="Li"&"Wei"', None, "LiWei")
    book.close()
    out.seek(0)
    with pytest.raises(customers.ImportRefused, match="formulas"):
        run_import([], upload=out)
    assert count(CustomerImport) == 0


@pytest.mark.parametrize("upload, filename, message", [
    (BytesIO(b"mobile,name\n13800138000,Li\n"), "customers.csv", "Upload an Excel"),
    (BytesIO(b"mobile,name\n13800138000,Li\n"), "renamed.xlsx", "not an Excel workbook"),
    (BytesIO(b""), "empty.xlsx", "empty"),
])
def test_a_file_that_is_not_a_workbook_is_refused(gold, upload, filename, message, app):
    with pytest.raises(customers.ImportRefused, match=message):
        run_import([], upload=upload, filename=filename)
    assert count(CustomerImport) == 0
    assert list((customers._folder()).iterdir()) == []


def test_a_zip_bomb_is_refused_before_parsing(gold):
    out = BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/worksheets/sheet1.xml", b"<" + b" " * (50 * 1024 * 1024))
    out.seek(0)
    with pytest.raises(customers.ImportRefused, match="too large or too compressed"):
        run_import([], upload=out)


def test_more_rows_than_the_cap_fail_the_run_before_any_is_imported(gold, monkeypatch):
    monkeypatch.setattr(customers, "MAX_ROWS", 3)
    run = run_import([row(f"1380013800{i}") for i in range(4)])
    assert run.status == RunStatus.FAILED and "more than 3 rows" in run.message
    assert count(Member) == 0
    ok = run_import([row(f"1380013800{i}") for i in range(3)])
    assert ok.imported == 3


def test_unknown_policy_is_refused(gold):
    with pytest.raises(customers.ImportRefused):
        run_import([row()], policy="merge")


def die_on_second_chunk(monkeypatch):
    """Chunks of 2 rows, and the worker dies writing the second; gives the real writer."""
    real = customers._write
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker died")
        return real(*args, **kwargs)

    monkeypatch.setattr(customers, "CHUNK", 2)
    monkeypatch.setattr(customers, "_write", dying)
    return real


def test_a_run_interrupted_after_its_first_chunk_resumes_without_duplicates(
        gold, monkeypatch):
    real = die_on_second_chunk(monkeypatch)
    rows = [row(f"1380013800{i}", kind="Member" if i % 2 else "") for i in range(5)]
    rows.append(row("13800138000", "duplicate of the first"))
    run = run_import(rows)
    assert (run.status, run.progress, run.imported) == ("running", 2, 2)
    monkeypatch.setattr(customers, "_write", real)
    # Not yet stale: the sweep leaves it to its worker.
    assert customers.resume_stalled(db.session) == 0
    clock.advance(customers.STALE_AFTER + timedelta(seconds=1))
    assert customers.resume_stalled(db.session) == 1
    db.session.expire_all()
    run = db.session.get(CustomerImport, run.id)
    assert (run.status, run.progress, run.imported, run.failed) == ("done", 6, 5, 1)
    assert "already in row 2" in errors(run)[7]
    assert count(Member) == 5 and count(MemberCard) == 2


def test_a_resumed_run_lets_a_later_row_have_the_number_of_a_row_that_failed(
        gold, monkeypatch):
    """As in a run never stopped: the first row fails (its e-mail), so the third, with the
    same number, is imported, even when the run stopped between the two."""
    real = die_on_second_chunk(monkeypatch)
    run = run_import([row("13800138000", email="not an address"), row("13800138001"),
                      row("13800138000", "the good twin")])
    assert (run.status, run.progress, run.imported, run.failed) == ("running", 2, 1, 1)
    monkeypatch.setattr(customers, "_write", real)
    clock.advance(customers.STALE_AFTER + timedelta(seconds=1))
    assert customers.resume_stalled(db.session) == 1
    db.session.expire_all()
    run = db.session.get(CustomerImport, run.id)
    assert (run.status, run.imported, run.failed) == ("done", 2, 1)
    assert member_by("+8613800138000").full_name == "the good twin"


def test_a_writer_failure_is_logged_when_checking_fails_too(gold, monkeypatch, caplog):
    monkeypatch.setattr(customers, "CHUNK", 1)
    real_check = customers._check

    def broken_write(*args, **kwargs):
        raise RuntimeError("writer broke")

    def broken_check(ctx, batch):
        if batch[0][0] > 3:
            raise ValueError("checking broke")
        return real_check(ctx, batch)

    monkeypatch.setattr(customers, "_write", broken_write)
    monkeypatch.setattr(customers, "_check", broken_check)
    run = run_import([row(f"1380013800{i}") for i in range(4)])
    assert (run.status, run.progress) == ("running", 0)
    (record,) = [r for r in caplog.records if "writing failed too" in r.getMessage()]
    assert "writer broke" in str(record.exc_info[1])


def test_a_run_another_worker_holds_is_not_processed_twice(gold):
    run = run_import([row()])
    with transaction(db.session):
        db.session.get(CustomerImport, run.id).status = RunStatus.QUEUED
    assert customers._claim(db.session, run.id) is True
    assert customers._claim(db.session, run.id) is False


def test_history_lists_runs_with_operator_and_counts(gold, operator):
    run_import([row(), row("12")], operator=operator, filename="first.xlsx")
    (entry,) = customers.history(db.session)
    assert (entry.operator, entry.run.filename, entry.run.imported, entry.run.failed) == (
        operator.name, "first.xlsx", 1, 1)
    assert count(CustomerImportFailure) == 1


@pytest.mark.parametrize("raw", [
    "13800138000", "+8613800138000", "+86 138-0013-8000", "(138) 0013 8000", "8613800138000",
    "008613800138000", "013800138000", "12345678901", "19912345678", "17912345678",
    "11912345678", "1380013800", "138001380000", "01012345678", "+1 650 253 0000",
    "+44 7700 900123", "４１３８００１３８０００", "abc", "+86", "1380013800x"])
def test_fast_mobile_check_agrees_with_the_full_parse(app, raw):
    try:
        expected = normalize_mobile(raw, "CN")
    except Exception as e:  # noqa: BLE001
        expected = type(e)
    try:
        got = customers.mobile(raw, "CN")
    except Exception as e:  # noqa: BLE001
        got = type(e)
    assert got == expected


@pytest.mark.parametrize("raw", [
    "li.wei@example.com", "Li.Wei@EXAMPLE.com", "a+b@qq.com", "x@localhost", "x@example",
    "a..b@example.com", ".a@example.com", "a@-example.com", "a@example.test", "ü@example.com",
    "a@bücher.de", "a @example.com"])
def test_fast_email_check_agrees_with_the_validator(app, raw):
    from email_validator import EmailNotValidError, validate_email

    try:
        expected = validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    try:
        got = customers.email(raw)
    except Exception:  # noqa: BLE001
        got = None
    assert got == expected


@pytest.mark.parametrize("region", ["CN", "US", "GB", "DE", "HK", "SG", "JP", "AU", "IN"])
def test_fast_mobile_check_agrees_with_the_full_parse_on_random_numbers(app, region):
    import random

    rnd = random.Random(region)
    for _ in range(3000):
        raw = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(6, 13)))
        if region == "CN" and rnd.random() < 0.5:
            raw = "1" + raw[1:]
        try:
            expected = normalize_mobile(raw, region)
        except Exception as e:  # noqa: BLE001
            expected = type(e)
        try:
            got = customers.mobile(raw, region)
        except Exception as e:  # noqa: BLE001
            got = type(e)
        assert got == expected, raw


def test_repeated_card_columns_and_dates_fail_each_row_that_has_them(gold):
    run = run_import([row("13800138000", kind="Member", tier="Platinum", born="1990-02-30"),
                      row("13800138001", kind="Member", tier="Platinum", born="1990-02-30"),
                      row("13800138002", kind="Member", tier="VIP", born="1990-02-28")])
    assert (run.imported, run.failed) == (1, 2)
    assert errors(run)[2] == errors(run)[3] and "Platinum" in errors(run)[3]
    assert "YYYY-MM-DD" in errors(run)[3]


def test_row_messages_are_in_the_language_the_run_was_started_in(gold):
    from flask_babel import force_locale

    with force_locale("zh_Hans"):
        run = run_import([row("12")])
    assert run.failed == 1 and errors(run)[2].endswith("请输入有效的手机号。")


def test_a_failure_while_checking_rows_stops_the_run_after_the_chunks_written(
        gold, monkeypatch):
    def broken(ctx, batch):
        if any(number > 3 for number, _values in batch):
            raise RuntimeError("a bug in a row rule")
        return real(ctx, batch)

    real = customers._check
    monkeypatch.setattr(customers, "CHUNK", 2)
    monkeypatch.setattr(customers, "_check", broken)
    run = run_import([row(f"1380013800{i}") for i in range(6)])
    # The first chunk went in; the run waits for the sweep, as after a worker's death.
    assert (run.status, run.progress, run.imported) == ("running", 2, 2)


def test_card_numbers_already_taken_or_drawn_twice_are_drawn_again(gold, session,
                                                                   monkeypatch):
    from portal.members.services import issue_card

    customer = MemberFactory()
    with transaction(session):
        on_file = issue_card(session, customer, gold).number
    twin, fine = "4000000000000002", "4000000000000010"
    redrawn = ["4000000000000028", "4000000000000036", "4000000000000044"]
    draws = iter([[on_file, twin, twin, fine], redrawn])
    monkeypatch.setattr(customers, "new_card_numbers", lambda count: next(draws)[:count])
    run = run_import([row(f"1380013800{i}", kind="Member") for i in range(4)])
    assert (run.imported, run.failed) == (4, 0)
    assert sorted(session.scalars(select(MemberCard.number)
                                  .where(MemberCard.number != on_file))) == \
        sorted([fine, *redrawn])
