from datetime import UTC, date, datetime, timedelta

from portal import clock


def test_frozen_clock_moves_only_when_told():
    clock.freeze(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    assert clock.now() == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    clock.advance(timedelta(minutes=5))
    assert clock.now() == datetime(2026, 3, 1, 12, 5, tzinfo=UTC)


def test_today_is_the_merchants_local_date():
    clock.set_timezone("Asia/Shanghai")
    clock.freeze(datetime(2026, 3, 1, 17, 0, tzinfo=UTC))  # 01:00 on 2 March in Shanghai
    assert clock.today() == date(2026, 3, 2)


def test_start_of_local_day_is_midnight_in_the_merchants_zone():
    clock.set_timezone("Asia/Shanghai")
    assert clock.start_of_local_day(date(2026, 3, 2)) == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
