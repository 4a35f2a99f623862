"""Custom member attributes in segments (text, number, date rules with a live count and bulk
tagging), in the members list filter, and the system attributes shown as read-only."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.db import db, transaction
from portal.members import segments
from portal.members import services as members
from portal.members.models import Member, Tag, member_tags
from tests.fixtures import member_with_card, sign_in_as


@pytest.fixture
def attrs(owner):
    for key, kind in (("drink", "text"), ("children", "number"), ("wedding", "date")):
        members.create_custom_attribute(db.session, name=key.title(), key=key, kind=kind,
                                        operator_id=owner.id)


def _with(plan, **custom):
    m = member_with_card(plan)
    with transaction(db.session):
        db.session.merge(m).custom = {k: str(v) for k, v in custom.items()}
    return m


def _ids(match, rules):
    return set(db.session.scalars(select(Member.id).where(segments.condition(match, rules))))


def _rule(op, **value):
    return {"field": "custom", "op": op, "value": value}


def test_text_rules_match_equal_or_contained_ignoring_case(plan, attrs):
    latte, mocha, none = _with(plan, drink="Oat Latte"), _with(plan, drink="mocha"), \
        member_with_card(plan)
    assert _ids("all", [_rule("eq", key="drink", kind="text", text="oat latte")]) == {latte.id}
    assert _ids("all", [_rule("contains", key="drink", kind="text", text="LAT")]) == {latte.id}
    assert none.id not in _ids("any", [_rule("contains", key="drink", kind="text",
                                             text="o")]) and mocha


def test_number_rules_compare_as_numbers_not_text(plan, attrs):
    two, ten, empty = _with(plan, children=2), _with(plan, children=10), _with(plan, children="")
    assert _ids("all", [_rule("between", key="children", kind="number", min=3,
                              max=None)]) == {ten.id}
    assert _ids("all", [_rule("between", key="children", kind="number", min=None,
                              max=2)]) == {two.id}
    assert empty.id not in _ids("all", [_rule("between", key="children", kind="number",
                                              min=0, max=None)])


def test_date_rules_before_and_after(plan, attrs):
    early, late = _with(plan, wedding="2019-05-01"), _with(plan, wedding="2024-09-30")
    assert _ids("all", [_rule("before", key="wedding", kind="date", day="2020-01-01")]) == \
        {early.id}
    assert _ids("all", [_rule("after", key="wedding", kind="date", day="2020-01-01")]) == \
        {late.id}


@pytest.mark.parametrize("rule", [
    _rule("before", key="drink", kind="text", text="x"),
    _rule("eq", key="drink", kind="text", text=" "),
    _rule("between", key="children", kind="number", min=None, max=None),
    _rule("between", key="children", kind="number", min=5, max=1),
    _rule("after", key="wedding", kind="date", day="31/12/2020"),
    {"field": "custom", "op": "eq", "value": "drink"}])
def test_bad_custom_rules_are_refused(rule):
    assert "custom" in segments.validate("all", [rule])


def test_segment_page_counts_and_tags_by_custom_attribute(client, manager, plan, attrs):
    sign_in_as(client, manager)
    fan = _with(plan, drink="Flat white")
    _with(plan, drink="Tea")
    form = {"name": "Coffee fans", "match": "all", "custom_key": "drink",
            "custom_op": "contains", "custom_value": "white"}
    r = client.post("/admin/segments/count", data=form, headers={"HX-Request": "true",
                                                                  "HX-Target": "live_count"})
    assert "1 member matches" in r.get_data(as_text=True)
    r = client.post("/admin/segments/new", data=form)
    assert r.status_code == 303
    segment_id = int(r.headers["Location"].rstrip("/").split("/")[-1])
    page = client.get(f"/admin/segments/{segment_id}").get_data(as_text=True)
    assert 'value="white"' in page
    assert "Drink contains “white”" in client.get("/admin/segments").get_data(as_text=True)
    assert client.post(f"/admin/segments/{segment_id}/tag", data={"tag": "coffee"}).status_code \
        == 303
    tag = db.session.query(Tag).filter_by(name="coffee").one()
    tagged = set(db.session.scalars(select(member_tags.c.member_id)
                                    .where(member_tags.c.tag_id == tag.id)))
    assert tagged == {fan.id}


def test_segment_form_refuses_a_bad_number_at_the_field(client, manager, attrs):
    sign_in_as(client, manager)
    r = client.post("/admin/segments/new", data={
        "name": "Big families", "match": "all", "custom_key": "children",
        "custom_op": "min", "custom_value": "many"})
    assert r.status_code == 422 and 'id="custom_value-error"' in r.get_data(as_text=True)


def test_members_list_filters_by_a_custom_attribute(client, manager, plan, attrs):
    sign_in_as(client, manager)
    latte, tea = _with(plan, drink="Latte"), _with(plan, drink="Tea")
    body = client.get("/admin/members?attr=drink&attr_value=latt").get_data(as_text=True)
    assert latte.full_name in body and tea.full_name not in body


def test_attributes_page_lists_system_attributes_as_read_only(client, manager):
    sign_in_as(client, manager)
    body = client.get("/admin/attributes").get_data(as_text=True)
    assert "System attributes" in body and "<code>born_on</code>" in body
    assert "<code>mobile</code>" in body and body.count(">System<") >= 7
