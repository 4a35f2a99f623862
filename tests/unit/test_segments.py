"""Segments: each rule, all vs any, the edge cases, one statement per count."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, select

from portal import clock
from portal.db import db, transaction
from portal.ledger import Account, AccountKind
from portal.members import segments
from portal.members import services as members
from portal.members.errors import MemberError
from portal.members.models import Member, Segment, Tag, Tier, member_tags
from portal.staff.models import AuditEntry
from tests.factories import CardPlanFactory, MemberFactory
from tests.fixtures import member_with_card

NOW = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(NOW)


def _member(plan, **values) -> Member:
    m = member_with_card(plan)
    if values:
        m = db.session.merge(m)
        for k, v in values.items():
            setattr(m, k, v)
        db.session.commit()
    return m


def _points(member, balance):
    db.session.add(Account(kind=AccountKind.POINTS.value, owner_type="member",
                           owner_id=member.id, balance=balance))
    db.session.commit()


def _ids(match, *rules) -> set[int]:
    return set(db.session.scalars(select(Member.id).where(segments.condition(match,
                                                                             list(rules)))))


def _segment(match, *rules, name="Seg") -> Segment:
    return segments.create_segment(db.session, name=name, match=match, rules=list(rules),
                                   operator_id=None)


# --- each field ---------------------------------------------------------------------------

def test_plan_rule_matches_card_holders_of_the_plans(plan):
    other_plan = CardPlanFactory(is_default=False)
    a, b = _member(plan), _member(other_plan)
    assert _ids("all", {"field": "plan", "op": "in", "value": [other_plan.id]}) == {b.id}
    assert _ids("all", {"field": "plan", "value": [plan.id, other_plan.id]}) == {a.id, b.id}


def test_tier_rule_matches_cards_in_the_tiers(plan):
    a, b = _member(plan), _member(plan)
    gold = Tier(plan_id=plan.id, name="Gold", rank=1, threshold=100, rule="accumulated")
    db.session.add(gold)
    db.session.commit()
    card = db.session.merge(b).cards[0]
    card.tier_id = gold.id
    db.session.commit()
    assert _ids("all", {"field": "tier", "value": [gold.id]}) == {b.id}
    assert _ids("all", {"field": "tier", "value": [plan.default_tier.id]}) == {a.id}


def test_tag_rule_matches_members_with_any_of_the_tags(plan, owner):
    a, b, _c = _member(plan), _member(plan), _member(plan)
    members.set_tags(db.session, a.id, ["VIP"], operator_id=owner.id)
    members.set_tags(db.session, b.id, ["VIP", "Regular"], operator_id=owner.id)
    vip, regular = (db.session.scalar(select(Tag.id).where(Tag.name == n))
                    for n in ("VIP", "Regular"))
    assert _ids("all", {"field": "tag", "value": [vip, regular]}) == {a.id, b.id}
    assert _ids("all", {"field": "tag", "value": [regular]}) == {b.id}


def test_days_since_purchase_counts_local_days(plan):
    clock.set_timezone("Asia/Shanghai")
    try:
        # 2026-06-15 16:00 in Shanghai. Bought 2026-06-14 23:30 local: one day ago.
        yesterday_late = datetime(2026, 6, 14, 15, 30, tzinfo=UTC)
        today_early = datetime(2026, 6, 14, 16, 30, tzinfo=UTC)   # 00:30 on the 15th
        a = _member(plan, last_purchase_at=yesterday_late)
        b = _member(plan, last_purchase_at=today_early)
        assert _ids("all", {"field": "days_since_purchase", "op": "gte", "value": 1}) == {a.id}
        assert _ids("all", {"field": "days_since_purchase", "op": "lte", "value": 0}) == {b.id}
        assert _ids("all", {"field": "days_since_purchase", "op": "lte", "value": 1}) == \
            {a.id, b.id}
    finally:
        clock.set_timezone("UTC")


def test_days_since_purchase_counts_from_joining_when_never_bought(plan):
    never = _member(plan, became_member_at=NOW - timedelta(days=40), last_purchase_at=None)
    bought = _member(plan, became_member_at=NOW - timedelta(days=400),
                     last_purchase_at=NOW - timedelta(days=5))
    assert _ids("all", {"field": "days_since_purchase", "op": "gte", "value": 30}) == \
        {never.id}
    assert _ids("all", {"field": "days_since_purchase", "op": "lte", "value": 30}) == \
        {bought.id}


def test_birthday_month_rule(plan):
    march = _member(plan, born_on=date(1990, 3, 31))
    _member(plan, born_on=date(1990, 4, 1))
    _member(plan, born_on=None)
    december = _member(plan, born_on=date(2001, 12, 1))
    assert _ids("all", {"field": "birthday_month", "value": [3, 12]}) == {march.id, december.id}


def test_points_range_counts_members_without_an_account_as_zero(plan):
    none, low, high = _member(plan), _member(plan), _member(plan)
    _points(low, 50)
    _points(high, 500)
    assert _ids("all", {"field": "points", "value": {"min": 100}}) == {high.id}
    assert _ids("all", {"field": "points", "value": {"max": 100}}) == {none.id, low.id}
    assert _ids("all", {"field": "points", "value": {"min": 50, "max": 500}}) == \
        {low.id, high.id}
    assert _ids("all", {"field": "points", "value": {"min": 0, "max": 0}}) == {none.id}


def test_points_of_other_kinds_do_not_count(plan):
    m = _member(plan)
    db.session.add(Account(kind=AccountKind.EXPERIENCE.value, owner_type="member",
                           owner_id=m.id, balance=900))
    db.session.commit()
    assert _ids("all", {"field": "points", "value": {"min": 1}}) == set()


def test_enroll_source_rule(plan):
    poster = _member(plan, enroll_source="poster")
    _member(plan, enroll_source="wechat")
    _member(plan)
    assert _ids("all", {"field": "enroll_source", "value": ["poster"]}) == {poster.id}


# --- combining ----------------------------------------------------------------------------

def test_all_needs_every_rule_and_any_needs_one(plan):
    both = _member(plan, enroll_source="poster", born_on=date(1990, 3, 1))
    poster = _member(plan, enroll_source="poster")
    march = _member(plan, born_on=date(1990, 3, 9))
    _member(plan)
    rules = ({"field": "enroll_source", "value": ["poster"]},
             {"field": "birthday_month", "value": [3]})
    assert _ids("all", *rules) == {both.id}
    assert _ids("any", *rules) == {both.id, poster.id, march.id}


def test_customers_without_a_card_are_never_in_a_segment(plan):
    MemberFactory(enroll_source="poster")
    member = _member(plan, enroll_source="poster")
    assert _ids("any", {"field": "enroll_source", "value": ["poster"]}) == {member.id}


def test_a_member_with_two_matching_cards_counts_once(plan):
    second = CardPlanFactory(is_default=False)
    m = _member(plan)
    with transaction(db.session):
        members.issue_card(db.session, db.session.merge(m), second)
    rule = {"field": "plan", "value": [plan.id, second.id]}
    assert segments.count(db.session, "all", [rule]) == 1


def test_count_is_one_statement(plan):
    for _ in range(3):
        _points(_member(plan, enroll_source="poster"), 200)
    rules = [{"field": "plan", "value": [plan.id]}, {"field": "tag", "value": [1]},
             {"field": "days_since_purchase", "op": "gte", "value": 0},
             {"field": "birthday_month", "value": [1]},
             {"field": "points", "value": {"min": 100}},
             {"field": "enroll_source", "value": ["poster"]}]
    db.session.commit()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        n = segments.count(db.session, "any", rules)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert n == 3
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_counts_of_many_segments_in_one_statement(plan):
    _member(plan, enroll_source="poster")
    _member(plan, born_on=date(1990, 3, 1))
    a = _segment("all", {"field": "enroll_source", "value": ["poster"]}, name="A")
    b = _segment("any", {"field": "birthday_month", "value": [3]},
                 {"field": "plan", "value": [plan.id]}, name="B")
    db.session.commit()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        found = segments.counts(db.session, [a, b])
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert found == {a.id: 1, b.id: 2}
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_member_ids_of_a_segment(plan):
    poster = _member(plan, enroll_source="poster")
    s = _segment("all", {"field": "enroll_source", "value": ["poster"]})
    assert list(db.session.scalars(segments.member_ids(db.session, s.id))) == [poster.id]


def test_condition_for_ids_is_any_of_the_segments(plan):
    poster = _member(plan, enroll_source="poster")
    march = _member(plan, born_on=date(1990, 3, 1))
    _member(plan)
    a = _segment("all", {"field": "enroll_source", "value": ["poster"]}, name="A")
    b = _segment("all", {"field": "birthday_month", "value": [3]}, name="B")
    db.session.commit()

    def ids(segment_ids):
        cond = segments.condition_for_ids(db.session, segment_ids)
        return set(db.session.scalars(select(Member.id).where(cond)))

    assert ids([a.id, b.id]) == {poster.id, march.id}
    assert ids([b.id]) == {march.id}
    assert ids([]) == set()
    assert ids([999]) == set()


# --- saving -------------------------------------------------------------------------------

@pytest.mark.parametrize("rule,field", [
    ({"field": "plan", "value": []}, "plan"),
    ({"field": "tier", "value": ["1"]}, "tier"),
    ({"field": "tag", "value": [True]}, "tag"),
    ({"field": "days_since_purchase", "op": "gt", "value": 3}, "days_since_purchase"),
    ({"field": "days_since_purchase", "op": "gte", "value": -1}, "days_since_purchase"),
    ({"field": "birthday_month", "value": [13]}, "birthday_month"),
    ({"field": "points", "value": {}}, "points"),
    ({"field": "points", "value": {"min": 10, "max": 5}}, "points"),
    ({"field": "points", "value": {"min": -1}}, "points"),
    ({"field": "enroll_source", "value": ["x" * 65]}, "enroll_source"),
    ({"field": "shoe_size", "value": [42]}, "rules"),
    ("plan", "rules"),
])
def test_bad_rules_are_refused_by_field(rule, field):
    with pytest.raises(MemberError) as e:
        _segment("all", rule)
    assert field in e.value.details["errors"]
    assert db.session.query(Segment).count() == 0


def test_a_segment_needs_a_name_rules_and_a_match():
    with pytest.raises(MemberError) as e:
        segments.create_segment(db.session, name=" ", match="some", rules=[], operator_id=None)
    assert set(e.value.details["errors"]) == {"name", "match", "rules"}


def test_segment_names_are_unique_and_short():
    _segment("all", {"field": "birthday_month", "value": [1]}, name="January")
    for name, message in (("january", "Another segment"), ("x" * 81, "at most")):
        with pytest.raises(MemberError) as e:
            _segment("all", {"field": "birthday_month", "value": [1]}, name=name)
        assert message in e.value.details["errors"]["name"]


def test_rules_are_stored_tidy_and_changes_are_audited(owner):
    s = segments.create_segment(db.session, name="  Spring  fans ", match="all", rules=[
        {"field": "birthday_month", "value": [5, 3, 3]}], operator_id=owner.id)
    assert s.name == "Spring fans"
    assert s.rules == [{"field": "birthday_month", "op": "in", "value": [3, 5]}]
    segments.update_segment(db.session, s.id, name="Spring", match="any", rules=s.rules,
                            operator_id=owner.id)
    segments.delete_segment(db.session, s.id, operator_id=owner.id)
    actions = [a for a, in db.session.query(AuditEntry.action).filter_by(staff_id=owner.id)
               .order_by(AuditEntry.id)]
    assert actions == ["segment.create", "segment.update", "segment.delete"]
    assert db.session.query(Segment).count() == 0


def test_tag_segment_tags_members_once(plan, owner):
    a, b = _member(plan, enroll_source="poster"), _member(plan, enroll_source="poster")
    _member(plan)
    members.set_tags(db.session, a.id, ["Spring"], operator_id=owner.id)
    s = _segment("all", {"field": "enroll_source", "value": ["poster"]})
    assert segments.tag_segment(db.session, s.id, "Poster people", owner.id) == 2
    assert segments.tag_segment(db.session, s.id, "Poster people", owner.id) == 0
    assert segments.tag_segment(db.session, s.id, "Spring", owner.id) == 1
    tagged = db.session.execute(select(member_tags.c.member_id, Tag.name).join(Tag)).all()
    assert sorted(tagged) == sorted([(a.id, "Poster people"), (b.id, "Poster people"),
                                     (a.id, "Spring"), (b.id, "Spring")])
    entries = db.session.query(AuditEntry).filter_by(action="segment.tag").all()
    assert [e.after["added"] for e in entries] == [2, 0, 1]
    assert {e.staff_id for e in entries} == {owner.id}


@pytest.mark.parametrize("name", ["", "   ", "x" * 41])
def test_tag_segment_refuses_bad_tag_names(plan, owner, name):
    s = _segment("all", {"field": "plan", "value": [plan.id]})
    with pytest.raises(MemberError) as e:
        segments.tag_segment(db.session, s.id, name, owner.id)
    assert "tag" in e.value.details["errors"]
    assert db.session.query(Tag).count() == 0


def test_rules_in_words(plan):
    s = _segment("all", {"field": "plan", "value": [plan.id]},
                 {"field": "birthday_month", "value": [3, 4]},
                 {"field": "points", "value": {"min": 1000}},
                 {"field": "days_since_purchase", "op": "gte", "value": 30})
    assert segments.describe(db.session, [s])[s.id] == [
        f"Card plan is {plan.name}", "Birthday in March or April", "At least 1,000 points",
        "No purchase for 30 days or more"]
