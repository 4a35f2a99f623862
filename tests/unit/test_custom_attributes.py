from datetime import date

import pytest

from portal.members import services
from portal.members.attributes import MAX_CUSTOM_ATTRIBUTES
from portal.members.errors import MemberError
from portal.members.models import CustomAttribute, Member
from portal.staff.models import AuditEntry
from tests.factories import RegistrationPageFactory
from tests.fixtures import last_code

MOBILE = "+8613912348888"


def _create(session, owner, key="drink", kind="text", name="Favourite drink"):
    return services.create_custom_attribute(session, name=name, key=key, kind=kind,
                                            operator_id=owner.id)


@pytest.mark.parametrize("key", ["", "1abc", "drink-x", "a" * 33, "émoji"])
def test_attribute_ids_are_lowercase_identifiers(session, owner, key):
    with pytest.raises(MemberError) as e:
        _create(session, owner, key=key)
    assert "key" in e.value.details["errors"]


def test_attribute_ids_are_stored_in_lowercase(session, owner):
    assert _create(session, owner, key=" Drink ").key == "drink"


def test_attribute_ids_are_unique_and_the_kind_is_checked(session, owner):
    _create(session, owner)
    with pytest.raises(MemberError) as e:
        _create(session, owner, kind="colour")
    assert set(e.value.details["errors"]) == {"key", "kind"}


def test_at_most_48_custom_attributes(session, owner):
    for i in range(MAX_CUSTOM_ATTRIBUTES):
        session.add(CustomAttribute(key=f"a{i}", name=f"A{i}", kind="text"))
    session.commit()
    with pytest.raises(MemberError) as e:
        _create(session, owner, key="one_more")
    assert "name" in e.value.details["errors"]


def test_registration_asks_for_custom_attributes_and_keeps_the_answers(session, owner,
                                                                         plan):
    _create(session, owner, key="employees", kind="number", name="Employees")
    _create(session, owner, key="anniversary", kind="date", name="Anniversary")
    page = RegistrationPageFactory(plan=plan, fields=[
        ("custom__employees", True), ("custom__anniversary", False)])
    with pytest.raises(MemberError) as e:
        services.start_registration(session, page.id, MOBILE,
                                    {"custom__employees": "many", "custom__anniversary": "x"},
                                    None)
    assert set(e.value.details["errors"]) == {"custom__employees", "custom__anniversary"}
    otp = services.start_registration(session, page.id, MOBILE,
                                      {"custom__employees": "1,200",
                                       "custom__anniversary": "2015-06-01"}, None)
    member = services.complete_registration(session, otp.id, last_code(MOBILE))
    assert member.custom == {"employees": "1200", "anniversary": "2015-06-01"}


def test_profile_edit_saves_custom_values_and_clears_empty_ones(session, owner, member):
    _create(session, owner, key="company", name="Company")
    services.update_profile(session, member.id, {"full_name": "A", "custom__company": "Acme"})
    session.expire_all()
    assert session.get(Member, member.id).custom == {"company": "Acme"}
    services.update_profile(session, member.id, {"full_name": "A", "custom__company": ""})
    session.expire_all()
    assert session.get(Member, member.id).custom == {"company": None}


def test_custom_dates_are_shown_as_dates(session, owner, member):
    _create(session, owner, key="since", kind="date", name="Customer since")
    services.update_profile(session, member.id, {"custom__since": "2020-02-29"})
    session.expire_all()
    values = services.custom_values(session, session.get(Member, member.id))
    assert values[0][1] == date(2020, 2, 29)


def test_an_attribute_a_form_asks_for_cannot_be_deleted(session, owner, plan):
    attribute = _create(session, owner)
    page = RegistrationPageFactory(plan=plan, fields=[("custom__drink", False)])
    with pytest.raises(MemberError) as e:
        services.delete_custom_attribute(session, attribute.id, operator_id=owner.id)
    assert page.name in str(e.value)
    services.change_field(session, page.id, "custom__drink", remove=True, operator_id=owner.id)
    services.delete_custom_attribute(session, attribute.id, operator_id=owner.id)
    assert session.query(CustomAttribute).count() == 0
    actions = {a for (a,) in session.query(AuditEntry.action)}
    assert {"attribute.create", "attribute.delete"} <= actions


def test_rename_keeps_the_id(session, owner):
    attribute = _create(session, owner)
    services.rename_custom_attribute(session, attribute.id, "Usual order", operator_id=owner.id)
    session.expire_all()
    renamed = session.get(CustomAttribute, attribute.id)
    assert (renamed.name, renamed.key) == ("Usual order", "drink")
