"""Segments in the merchant area over HTTP."""
from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from portal.db import db
from portal.members import segments
from portal.members.models import Member, Segment, Tag, member_tags
from portal.staff.models import AuditEntry
from tests.fixtures import count_queries, member_with_card, sign_in_as


def _member(plan, **values):
    m = db.session.merge(member_with_card(plan))
    for k, v in values.items():
        setattr(m, k, v)
    db.session.commit()
    return m


def _is_checked(body: str, name: str, value: str) -> bool:
    return re.search(rf'<input checked id="{name}-\d+" name="{name}" type="checkbox" '
                     rf'value="{value}">', body) is not None


def _form(**changes) -> dict:
    return {"name": "Poster fans", "match": "all", "days_since_purchase_op": "gte",
            "days_since_purchase": "", "points_min": "", "points_max": "", **changes}


def _segment(name="Poster fans", match="all", rules=None) -> Segment:
    return segments.create_segment(
        db.session, name=name, match=match,
        rules=rules or [{"field": "enroll_source", "value": ["poster"]}], operator_id=None)


def test_create_a_segment(owner_client, owner, plan):
    _member(plan, enroll_source="poster")
    r = owner_client.post("/admin/segments/new", data=_form(
        enroll_source=["poster"], birthday_month=["3", "4"], points_min="100",
        days_since_purchase="30", match="any"))
    assert r.status_code == 303
    s = db.session.query(Segment).one()
    assert r.headers["Location"].endswith(f"/admin/segments/{s.id}")
    assert (s.name, s.match) == ("Poster fans", "any")
    assert s.rules == [
        {"field": "birthday_month", "op": "in", "value": [3, 4]},
        {"field": "days_since_purchase", "op": "gte", "value": 30},
        {"field": "points", "op": "between", "value": {"min": 100, "max": None}},
        {"field": "enroll_source", "op": "in", "value": ["poster"]}]
    assert db.session.query(AuditEntry).filter_by(action="segment.create",
                                                  staff_id=owner.id).count() == 1


def test_the_edit_page_shows_the_saved_rules_and_the_count(owner_client, plan):
    _member(plan, enroll_source="poster")
    _member(plan, enroll_source="poster")
    s = _segment(rules=[{"field": "enroll_source", "value": ["poster"]},
                        {"field": "points", "value": {"max": 10}}])
    body = owner_client.get(f"/admin/segments/{s.id}").get_data(as_text=True)
    assert _is_checked(body, "enroll_source", "poster")
    assert 'id="points_max" inputmode="numeric" name="points_max" type="text" value="10"' in body
    assert "2 members match." in body and "Tag all 2 members" in body


def test_edit_a_segment(owner_client, owner, plan):
    s = _segment()
    r = owner_client.post(f"/admin/segments/{s.id}", data=_form(
        name="Born in May", birthday_month=["5"]))
    assert r.status_code == 303
    db.session.expire_all()
    s = db.session.get(Segment, s.id)
    assert s.name == "Born in May" and s.updated_at is not None
    assert s.rules == [{"field": "birthday_month", "op": "in", "value": [5]}]
    entry = db.session.query(AuditEntry).filter_by(action="segment.update").one()
    assert entry.staff_id == owner.id and entry.before["name"] == "Poster fans"


@pytest.mark.parametrize("changes,field", [
    ({"name": ""}, "name"),
    ({"name": "x" * 81}, "name"),
    ({"name": "Taken"}, "name"),
    ({"days_since_purchase": "ten"}, "days_since_purchase"),
    ({"days_since_purchase": "5", "days_since_purchase_op": "gt"}, "days_since_purchase"),
    ({"days_since_purchase": "99999999"}, "days_since_purchase"),
    ({"points_min": "-5"}, "points_min"),
    ({"points_min": "50", "points_max": "10"}, "points_max"),
    ({"birthday_month": ["13"]}, "birthday_month"),
    ({"plan": ["x"]}, "plan"),
    ({"match": "most"}, "match"),
])
def test_bad_input_is_refused_next_to_the_field(owner_client, changes, field):
    _segment(name="Taken")
    r = owner_client.post("/admin/segments/new", data=_form(
        **{"enroll_source": ["poster"], **changes}))
    body = r.get_data(as_text=True)
    assert r.status_code == 422, field
    assert f'id="{field}-error"' in body
    assert db.session.query(Segment).count() == 1


def test_a_segment_without_rules_is_refused(owner_client):
    r = owner_client.post("/admin/segments/new", data=_form())
    assert r.status_code == 422
    assert "Add at least one rule." in r.get_data(as_text=True)
    assert db.session.query(Segment).count() == 0


def test_a_refused_edit_changes_nothing(owner_client, plan):
    s = _segment()
    r = owner_client.post(f"/admin/segments/{s.id}", data=_form(
        name="New name", enroll_source=["wechat"], points_min="9", points_max="1"))
    assert r.status_code == 422 and 'id="points_max-error"' in r.get_data(as_text=True)
    db.session.expire_all()
    s = db.session.get(Segment, s.id)
    assert s.name == "Poster fans"
    assert s.rules == [{"field": "enroll_source", "op": "in", "value": ["poster"]}]


def test_live_count_returns_only_the_count_element(owner_client, plan):
    _member(plan, born_on=date(1990, 3, 1))
    _member(plan, born_on=date(1990, 3, 2))
    _member(plan, born_on=date(1990, 4, 2))
    r = owner_client.post("/admin/segments/count", data=_form(birthday_month=["3"]),
                          headers={"HX-Request": "true", "HX-Target": "live_count"})
    body = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "<html" not in body and "<form" not in body
    assert body.strip().startswith('<p id="live_count"') and "2 members match." in body
    r = owner_client.post("/admin/segments/count", data=_form(days_since_purchase="x"),
                          headers={"HX-Request": "true", "HX-Target": "live_count"})
    assert "Correct the marked rules" in r.get_data(as_text=True)
    assert db.session.query(Segment).count() == 0


def test_count_without_javascript_shows_the_whole_form(owner_client, plan):
    _member(plan, born_on=date(1990, 3, 1))
    s = _segment()
    r = owner_client.post(f"/admin/segments/count?segment_id={s.id}",
                          data=_form(birthday_month=["3"]))
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "<html" in body and "1 member matches." in body
    assert f'action="/admin/segments/{s.id}"' in body


def test_list_shows_rules_in_words_and_counts_without_n_plus_1(owner_client, plan):
    _member(plan, enroll_source="poster")
    _segment()
    few = count_queries(owner_client, "/admin/segments")
    for i in range(4):
        _segment(name=f"S{i}", rules=[{"field": "plan", "value": [plan.id]},
                                      {"field": "birthday_month", "value": [i + 1]}])
    assert count_queries(owner_client, "/admin/segments") == few + 1   # + plan names
    body = owner_client.get("/admin/segments").get_data(as_text=True)
    assert "Came from poster" in body and f"Card plan is {plan.name}" in body


def test_tag_all_members_of_a_segment(owner_client, owner, plan):
    a, b = _member(plan, enroll_source="poster"), _member(plan, enroll_source="poster")
    other = _member(plan)
    s = _segment()
    r = owner_client.post(f"/admin/segments/{s.id}/tag", data={"tag": " Poster  fan "})
    assert r.status_code == 303
    assert "2 members now have the tag “Poster fan”." in \
        owner_client.get(r.headers["Location"]).get_data(as_text=True)
    owner_client.post(f"/admin/segments/{s.id}/tag", data={"tag": "Poster fan"})
    tagged = set(db.session.scalars(select(member_tags.c.member_id).join(Tag)
                                    .where(Tag.name == "Poster fan")))
    assert tagged == {a.id, b.id} and other.id not in tagged
    entries = db.session.query(AuditEntry).filter_by(action="segment.tag").all()
    assert [e.after["added"] for e in entries] == [2, 0]
    assert all(e.staff_id == owner.id for e in entries)


def test_a_bad_tag_is_refused_next_to_the_field(owner_client, plan):
    _member(plan, enroll_source="poster")
    s = _segment()
    r = owner_client.post(f"/admin/segments/{s.id}/tag", data={"tag": "x" * 41})
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and 'id="tag-error"' in body
    assert _is_checked(body, "enroll_source", "poster")
    assert db.session.query(Tag).count() == 0


def test_manual_tags_on_the_member_page_feed_the_tag_rule(owner_client, plan):
    m = _member(plan)
    owner_client.post(f"/admin/members/{m.id}/tags", data={"tags": "VIP"})
    vip = db.session.scalar(select(Tag.id).where(Tag.name == "VIP"))
    assert segments.count(db.session, "all", [{"field": "tag", "value": [vip]}]) == 1
    body = owner_client.get("/admin/segments/new").get_data(as_text=True)
    assert f'value="{vip}"' in body and "VIP" in body


def test_delete_a_segment_keeps_members_and_tags(owner_client, owner, plan):
    m = _member(plan, enroll_source="poster")
    s = _segment()
    segments.tag_segment(db.session, s.id, "Poster fan", owner.id)
    r = owner_client.post(f"/admin/segments/{s.id}/delete")
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/segments")
    assert db.session.query(Segment).count() == 0
    assert [t.name for t in db.session.get(Member, m.id).tags] == ["Poster fan"]
    assert db.session.query(AuditEntry).filter_by(action="segment.delete",
                                                  staff_id=owner.id).count() == 1


def test_a_segment_a_running_activity_targets_is_kept(owner_client, plan):
    from datetime import timedelta

    from portal import clock
    from portal.campaigns.models import Activity

    s = _segment()
    activity = Activity(kind="reengagement", name="We miss you", code="BACK",
                        starts_at=clock.now(), ends_at=clock.now() + timedelta(days=9),
                        status="active", lapse_days=30, segment_ids=[s.id])
    db.session.add(activity)
    db.session.commit()
    r = owner_client.post(f"/admin/segments/{s.id}/delete", follow_redirects=True)
    assert "Activities use this segment: We miss you" in r.get_data(as_text=True)
    assert db.session.query(Segment).count() == 1
    activity.status = "archived"
    db.session.commit()
    owner_client.post(f"/admin/segments/{s.id}/delete")
    assert db.session.query(Segment).count() == 0


def test_manager_can_open_segments(client, manager):
    sign_in_as(client, manager)
    assert client.get("/admin/segments").status_code == 200


@pytest.mark.parametrize("method,url", [
    ("get", "/admin/segments"), ("get", "/admin/segments/new"), ("get", "/admin/segments/{id}"),
    ("post", "/admin/segments/new"), ("post", "/admin/segments/count"),
    ("post", "/admin/segments/{id}/tag"), ("post", "/admin/segments/{id}/delete")])
def test_clerks_cannot_use_segments(client, clerk, method, url):
    s = _segment()
    sign_in_as(client, clerk)
    r = getattr(client, method)(url.format(id=s.id), data=_form(name="Mine", tag="x"))
    assert r.status_code == 403
    assert db.session.query(Segment).count() == 1 and db.session.query(Tag).count() == 0


def test_unknown_segments_are_not_found(owner_client):
    assert owner_client.get("/admin/segments/999").status_code == 404
    assert owner_client.post("/admin/segments/999/tag", data={"tag": "x"}).status_code == 404
    assert owner_client.post("/admin/segments/999/delete").status_code == 404


def test_segment_forms_need_the_csrf_token(client, owner, csrf_on):
    s = _segment()
    sign_in_as(client, owner)
    assert client.post("/admin/segments/new", data=_form(enroll_source=["x"])).status_code == 400
    assert client.post(f"/admin/segments/{s.id}/tag", data={"tag": "x"}).status_code == 400
    assert client.post(f"/admin/segments/{s.id}/delete").status_code == 400
    assert db.session.query(Segment).count() == 1
