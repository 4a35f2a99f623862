from datetime import UTC, datetime, timedelta

import pytest

from portal import clock
from portal.members import services
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.models import CodePurpose, Member, OneTimeCode
from tests.fixtures import last_code

MOBILE = "+8613912340000"


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(datetime(2026, 5, 1, 9, 0, tzinfo=UTC))


def _send(session, mobile=MOBILE):
    return services.request_code(session, mobile, CodePurpose.SIGN_IN)


def test_code_is_six_digits_and_stored_only_hashed(session, plan):
    otp = _send(session)
    code = last_code(MOBILE)
    assert len(code) == 6 and code.isdigit()
    stored = session.get(OneTimeCode, otp.id)
    assert code not in stored.code_hash and len(stored.code_hash) == 64


def test_right_code_signs_up_a_new_number_with_a_card(session, plan):
    otp = _send(session)
    member = services.sign_in_with_code(session, otp.id, last_code(MOBILE))
    assert member.mobile == MOBILE and member.mobile_verified and member.is_member


def test_a_code_works_once(session, plan):
    otp = _send(session)
    code = last_code(MOBILE)
    services.sign_in_with_code(session, otp.id, code)
    with pytest.raises(MemberError) as e:
        services.sign_in_with_code(session, otp.id, code)
    assert e.value.code == MemberErrorCode.CODE_EXPIRED


def test_code_expires_after_five_minutes(session, plan):
    otp = _send(session)
    clock.advance(timedelta(minutes=5, seconds=1))
    with pytest.raises(MemberError) as e:
        services.sign_in_with_code(session, otp.id, last_code(MOBILE))
    assert e.value.code == MemberErrorCode.CODE_EXPIRED


def test_five_wrong_tries_burn_the_code(session, plan):
    otp = _send(session)
    right = last_code(MOBILE)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for tries_left in (4, 3, 2, 1):
        with pytest.raises(MemberError) as e:
            services.sign_in_with_code(session, otp.id, wrong)
        assert e.value.code == MemberErrorCode.CODE_INVALID
        assert str(tries_left) in str(e.value)
    with pytest.raises(MemberError) as e:
        services.sign_in_with_code(session, otp.id, wrong)
    assert e.value.code == MemberErrorCode.CODE_BURNT
    with pytest.raises(MemberError):
        services.sign_in_with_code(session, otp.id, right)
    assert session.query(Member).count() == 0


def test_new_code_only_after_sixty_seconds(session, plan):
    _send(session)
    clock.advance(timedelta(seconds=59))
    with pytest.raises(MemberError) as e:
        _send(session)
    assert e.value.code == MemberErrorCode.CODE_TOO_SOON
    clock.advance(timedelta(seconds=2))
    _send(session)


def test_a_new_code_retires_the_old_one(session, plan):
    first = _send(session)
    old = last_code(MOBILE)
    clock.advance(timedelta(seconds=61))
    _send(session)
    with pytest.raises(MemberError):
        services.sign_in_with_code(session, first.id, old)


def test_invalid_number_is_refused_before_anything_is_sent(session):
    with pytest.raises(MemberError) as e:
        services.request_code(session, "12345", CodePurpose.SIGN_IN)
    assert e.value.code == MemberErrorCode.INVALID_MOBILE
    assert session.query(OneTimeCode).count() == 0
