from portal.members.services import new_card_number
from portal.web.filters import qr_code, qr_svg


def test_card_numbers_get_a_full_qr_code_not_micro_qr():
    code = qr_code(new_card_number())
    assert not code.is_micro and code.version >= 1


def test_qr_svg_has_no_inline_style():
    svg = str(qr_svg("1234567890123452", title="Card"))
    assert svg.startswith("<svg") and "style=" not in svg and "<title>Card</title>" in svg
