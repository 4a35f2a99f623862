from portal.members.services import new_card_number
from portal.web.filters import qr_code, qr_svg


def test_card_numbers_get_a_full_qr_code_not_micro_qr():
    code = qr_code(new_card_number())
    assert not code.is_micro and code.version >= 1


def test_qr_svg_has_no_inline_style():
    svg = str(qr_svg("1234567890123452", title="Card"))
    assert svg.startswith("<svg") and "style=" not in svg and "<title>Card</title>" in svg


def test_barcode_encodes_the_code_as_code128_bars():
    import barcode

    from portal.web.filters import barcode_svg

    svg = str(barcode_svg("HT7K9QWXM3PA", title="Coupon"))
    modules = barcode.get("code128", "HT7K9QWXM3PA").build()[0]
    assert svg.count("<rect") - 1 == modules.count("10") + modules.endswith("1")
    assert "style=" not in svg and "<title>Coupon</title>" in svg
