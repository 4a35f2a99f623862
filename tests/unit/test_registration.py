from datetime import UTC, date, datetime

import pytest

from portal import clock
from portal.members import services
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.models import Member, OneTimeCode
from tests.factories import MemberFactory
from tests.fixtures import last_code

MOBILE = "+8613912341111"


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(datetime(2026, 5, 1, 9, 0, tzinfo=UTC))


def _attribution(link):
    return services.Attribution(link.page_id, link.id, link.campaign, link.source,
                                link.content).as_dict()


def test_registration_records_the_source_on_the_new_member(session, link):
    otp = services.start_registration(session, link.page_id, "139 1234 1111",
                                      {"full_name": "Ada Lin", "born_on": "1990-04-02"},
                                      _attribution(link))
    assert session.query(Member).count() == 0  # nothing stored before the code
    member = services.complete_registration(session, otp.id, last_code(MOBILE))
    assert member.full_name == "Ada Lin" and member.born_on == date(1990, 4, 2)
    assert (member.enroll_page_id, member.enroll_link_id) == (link.page_id, link.id)
    assert (member.enroll_campaign, member.enroll_source, member.enroll_content) == \
        ("spring", "poster", "table-card")
    assert member.is_member and member.cards[0].plan_id == link.page.plan_id


def test_completing_twice_creates_one_member(session, page):
    otp = services.start_registration(session, page.id, MOBILE, {"full_name": "A"}, None)
    code = last_code(MOBILE)
    services.complete_registration(session, otp.id, code)
    with pytest.raises(MemberError):
        services.complete_registration(session, otp.id, code)
    assert session.query(Member).count() == 1


def test_existing_member_is_sent_to_sign_in_and_nothing_is_created(session, page, member):
    with pytest.raises(MemberError) as e:
        services.start_registration(session, page.id, member.mobile, {"full_name": "X"}, None)
    assert e.value.code == MemberErrorCode.ALREADY_MEMBER
    assert session.query(OneTimeCode).count() == 0
    assert session.query(Member).count() == 1


def test_customer_on_file_becomes_a_member_and_keeps_their_data(session, page):
    customer = MemberFactory(mobile=MOBILE, full_name="Kept Name", email="kept@example.com")
    otp = services.start_registration(session, page.id, MOBILE,
                                      {"full_name": "New Name", "born_on": "1991-01-01"}, None)
    member = services.complete_registration(session, otp.id, last_code(MOBILE))
    assert member.id == customer.id and member.is_member
    assert member.full_name == "Kept Name" and member.born_on == date(1991, 1, 1)


@pytest.mark.parametrize("answers,field", [
    ({"full_name": ""}, "full_name"),
    ({"full_name": "A", "born_on": "2026-06-01"}, "born_on"),   # in the future
    ({"full_name": "A", "born_on": "1900-01-01"}, "born_on"),   # over 120 years ago
    ({"full_name": "A" * 121}, "full_name"),
])
def test_bad_answers_are_reported_by_field_and_nothing_is_sent(session, page, answers, field):
    with pytest.raises(MemberError) as e:
        services.start_registration(session, page.id, MOBILE, answers, None)
    assert field in e.value.details["errors"]
    assert session.query(OneTimeCode).count() == 0


def test_every_bad_field_is_reported_at_once(session, plan):
    from tests.factories import RegistrationPageFactory

    page = RegistrationPageFactory(plan=plan, fields=[("full_name", True), ("email", True),
                                                      ("born_on", True)])
    with pytest.raises(MemberError) as e:
        services.start_registration(session, page.id, MOBILE,
                                    {"full_name": "", "email": "not-an-email",
                                     "born_on": "3000-01-01"}, None)
    assert set(e.value.details["errors"]) == {"full_name", "email", "born_on"}


def test_unpublished_page_takes_no_registrations(session, page):
    page.status = "draft"
    session.commit()
    with pytest.raises(MemberError) as e:
        services.start_registration(session, page.id, MOBILE, {"full_name": "A"}, None)
    assert e.value.code == MemberErrorCode.PAGE_NOT_PUBLISHED


def test_attribution_of_another_page_is_not_used(session, page, link):
    from tests.factories import RegistrationPageFactory

    other = RegistrationPageFactory(plan=page.plan)
    otp = services.start_registration(session, other.id, MOBILE, {"full_name": "A"},
                                      _attribution(link))
    member = services.complete_registration(session, otp.id, last_code(MOBILE))
    assert member.enroll_page_id == other.id and member.enroll_link_id is None


def test_tracking_values_from_a_url_are_dropped_when_too_long():
    assert services.clean_tracking("x" * 65) == ""
    assert services.clean_tracking(" spring ") == "spring"


def test_a_bad_number_and_a_missing_answer_are_reported_together(session, page):
    with pytest.raises(MemberError) as e:
        services.start_registration(session, page.id, "123", {"full_name": ""}, None)
    assert set(e.value.details["errors"]) == {"mobile", "full_name"}
