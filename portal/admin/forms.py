from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from portal.members.attributes import ATTRIBUTES
from portal.members.forms import MOBILE_KW, attribute_field


class SignInForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Enter your email."))],
                       render_kw={"autocomplete": "username", "required": True})
    password = PasswordField(_l("Password"),
                             validators=[DataRequired(_l("Enter your password."))],
                             render_kw={"autocomplete": "current-password", "required": True})


class CustomerForm(FlaskForm):
    kind = RadioField(_l("Add as"), choices=[SelectChoice("member", _l("Member (issue a card)")),
                               SelectChoice("customer", _l("Customer (no card yet)"))],
                      default="member")
    plan_id = SelectField(_l("Card plan"), coerce=int, choices=[], validate_choice=False)
    store_id = SelectField(_l("Store"), coerce=int, choices=[])
    mobile = StringField(_l("Mobile number"), render_kw=MOBILE_KW)
    full_name = attribute_field(ATTRIBUTES["full_name"], required=True)
    email = attribute_field(ATTRIBUTES["email"])
    born_on = attribute_field(ATTRIBUTES["born_on"])
    gender = attribute_field(ATTRIBUTES["gender"])
    address = attribute_field(ATTRIBUTES["address"])
    id_number = attribute_field(ATTRIBUTES["id_number"])


class PageForm(FlaskForm):
    name = StringField(_l("Name (for staff)"), validators=[
        DataRequired(_l("Give the page a name.")), Length(max=120)],
        render_kw={"required": True, "maxlength": 120})
    title = StringField(_l("Page title (members see it)"), validators=[
        DataRequired(_l("Give the page a title.")), Length(max=120)],
        render_kw={"required": True, "maxlength": 120})
    slug = StringField(_l("Web address"), render_kw={"required": True, "maxlength": 64,
                                                 "pattern": "[a-z0-9][a-z0-9-]+[a-z0-9]"})
    intro = TextAreaField(_l("Introduction"), validators=[Length(max=2000)],
                          render_kw={"rows": 3})
    plan_id = SelectField(_l("Card plan for new members"), coerce=int, choices=[],
                          validate_choice=False)
    after_submit_url = StringField(_l("After sign-up, go to"), validators=[Length(max=500)])
    existing_member_url = StringField(_l("Members who open the page go to"),
                                      validators=[Length(max=500)])
    share_title = StringField(_l("Sharing title"), validators=[Length(max=120)])
    share_summary = StringField(_l("Sharing summary"), validators=[Length(max=255)])
    banner = FileField(_l("Banner image"), render_kw={"accept": "image/png,image/jpeg"})
    share_image = FileField(_l("Sharing cover image"),
                            render_kw={"accept": "image/png,image/jpeg"})


class FieldAddForm(FlaskForm):
    attribute = SelectField(_l("Member attribute"), choices=[])
    required = BooleanField(_l("Required"))


class AttributeForm(FlaskForm):
    name = StringField(_l("Attribute name"), render_kw={"maxlength": 60, "required": True})
    key = StringField(_l("ID"), render_kw={"maxlength": 32, "required": True,
                                           "pattern": "[a-z][a-z0-9_]{1,31}"})
    kind = SelectField(_l("Type"), choices=[SelectChoice("text", _l("Text")),
                                            SelectChoice("number", _l("Number")),
                                            SelectChoice("date", _l("Date"))],
                       validate_choice=False)


class RenameAttributeForm(FlaskForm):
    name = StringField(_l("Attribute name"), render_kw={"maxlength": 60, "required": True})


class LinkForm(FlaskForm):
    campaign = StringField(_l("Campaign"), render_kw={"maxlength": 64})
    source = StringField(_l("Source"), render_kw={"maxlength": 64})
    content = StringField(_l("Content"), render_kw={"maxlength": 64})


# --- coupons ---------------------------------------------------------------------------

THEME_CHOICES = [SelectChoice("teal", _l("Teal")), SelectChoice("indigo", _l("Indigo")),
                 SelectChoice("amber", _l("Amber")), SelectChoice("rose", _l("Rose")),
                 SelectChoice("slate", _l("Slate"))]


class CouponTemplateForm(FlaskForm):
    kind = RadioField(_l("Type"), default="cash", validate_choice=False, choices=[
        SelectChoice("cash", _l("Cash voucher (amount off)")),
        SelectChoice("discount", _l("Discount (percent off)")),
        SelectChoice("gift", _l("Gift (a free item)"))])
    internal_name = StringField(_l("Internal name (members do not see it)"),
                                render_kw={"maxlength": 120, "required": True})
    title = StringField(_l("Title"), render_kw={"maxlength": 120, "required": True})
    subtitle = StringField(_l("Subtitle"), render_kw={"maxlength": 200})
    theme = SelectField(_l("Colour"), choices=THEME_CHOICES, validate_choice=False)
    amount = StringField(_l("Amount off"), render_kw={"inputmode": "decimal"})
    percent = StringField(_l("Percent off"), render_kw={"inputmode": "decimal"})
    cap = StringField(_l("At most (optional)"), render_kw={"inputmode": "decimal"})
    gift_item = StringField(_l("Free item"), render_kw={"maxlength": 120})
    min_spend = StringField(_l("Minimum spend (optional)"), render_kw={"inputmode": "decimal"})
    validity_kind = RadioField(_l("Valid"), default="relative", validate_choice=False,
                               choices=[SelectChoice("relative", _l("For a number of days "
                                                                    "after receipt")),
                                        SelectChoice("fixed", _l("Between two dates"))])
    valid_from_on = StringField(_l("First day"), render_kw={"type": "date"})
    valid_until_on = StringField(_l("Last day"), render_kw={"type": "date"})
    starts_after_days = StringField(_l("Starts after (days; 0 = at once)"),
                                    render_kw={"inputmode": "numeric"}, default="0")
    valid_days = StringField(_l("Valid for (days)"), render_kw={"inputmode": "numeric"},
                             default="30")
    inventory_total = StringField(_l("Inventory (empty: unlimited)"),
                                  render_kw={"inputmode": "numeric"})
    per_member_limit = StringField(_l("Per member (empty: no limit)"),
                                   render_kw={"inputmode": "numeric"})
    product_ids = TextAreaField(_l("Designated products (product or SKU ids)"),
                                render_kw={"rows": 3})
    products_file = FileField(_l("…or upload a list (.txt or .csv)"),
                              render_kw={"accept": ".txt,.csv,text/plain,text/csv"})
    extra_fields = TextAreaField(_l("Additional fields (key = value, one per line)"),
                                 render_kw={"rows": 2})
    instructions = TextAreaField(_l("Instructions"), render_kw={"rows": 3})
    channels = SelectMultipleField(_l("Can be used"), default=["POS", "ONLINE"],
                                   validate_choice=False,
                                   choices=[SelectChoice("POS", _l("At the till")),
                                            SelectChoice("ONLINE", _l("Online"))],
                                   widget=ListWidget(prefix_label=False),
                                   option_widget=CheckboxInput())
    online_url = StringField(_l("Online: “use now” link"), render_kw={"type": "url"})
    external_id = StringField(_l("Till: external coupon id"), render_kw={"maxlength": 64})


class PackageForm(FlaskForm):
    name = StringField(_l("Package name"), render_kw={"maxlength": 120, "required": True})


class QuickIssueForm(FlaskForm):
    offer = SelectField(_l("Coupon or package"), choices=[], validate_choice=False)
    quantity = StringField(_l("Quantity"), default="1", render_kw={"inputmode": "numeric"})
    reason = StringField(_l("Reason"), render_kw={"maxlength": 200, "required": True})
    nonce = HiddenField()


class ApiClientForm(FlaskForm):
    name = StringField(_l("Name"), render_kw={"maxlength": 120, "required": True})
    store = SelectField(_l("Store"), choices=[], validate_choice=False)
    channel = SelectField(_l("Channel"), validate_choice=False,
                          choices=[SelectChoice("POS", _l("POS (a till)")),
                                   SelectChoice("ONLINE", _l("ONLINE (a web shop)"))])


class ClaimLinkForm(FlaskForm):
    registration_page_id = SelectField(_l("Visitors who are not members sign up on"),
                                       coerce=int, choices=[], validate_choice=False)


# --- loyalty ---------------------------------------------------------------------------------

class EarningRuleForm(FlaskForm):
    points_amount = StringField(_l("Points"), render_kw={"inputmode": "numeric"})
    points_per = StringField(_l("for every (amount paid)"), render_kw={"inputmode": "decimal"})
    experience_amount = StringField(_l("Experience"), render_kw={"inputmode": "numeric"})
    experience_per = StringField(_l("for every (amount paid)"),
                                 render_kw={"inputmode": "decimal"})
    product_filter = SelectField(_l("Products that earn"), validate_choice=False, choices=[
        SelectChoice("none", _l("Everything")),
        SelectChoice("whitelist", _l("Only the products listed")),
        SelectChoice("blacklist", _l("Everything but the products listed"))])
    filter_product_ids = TextAreaField(_l("Product ids"), render_kw={"rows": 2})
    filter_names = TextAreaField(_l("Product names"), render_kw={"rows": 2})
    points_expiry = SelectField(_l("Points expire"), validate_choice=False, choices=[
        SelectChoice("never", _l("Never")),
        SelectChoice("0", _l("On the next 1 January")),
        *[SelectChoice(str(n), lazy_ngettext("On 1 January after %(num)d year",
                                             "On 1 January after %(num)d years", n))
          for n in range(1, 6)]])


class AdjustForm(FlaskForm):
    kind = SelectField(_l("Balance"), validate_choice=False, choices=[
        SelectChoice("points", _l("Points")), SelectChoice("experience", _l("Experience"))])
    delta = StringField(_l("Change (e.g. 50 or -20)"), render_kw={"inputmode": "numeric"})
    reason = StringField(_l("Reason"), render_kw={"maxlength": 200})
    nonce = HiddenField()


class TierSettingsForm(FlaskForm):
    enabled = BooleanField(_l("Compute tiers from experience"))
    recalc_day = StringField(_l("Recalculate everyone on day (1–28; empty: never)"),
                             render_kw={"inputmode": "numeric"})
    on_change = SelectField(_l("When experience changes"), validate_choice=False, choices=[
        SelectChoice("realtime", _l("Adjust the tier at once")),
        SelectChoice("upgrade_only", _l("Only move up")),
        SelectChoice("none", _l("No adjustment"))])
    validity = SelectField(_l("A tier is kept"), validate_choice=False, choices=[
        SelectChoice("months", _l("Until the day after X months")),
        SelectChoice("month_end", _l("Until the end of the month after X months")),
        SelectChoice("permanent", _l("For good"))])
    validity_months = StringField(_l("X (months)"), render_kw={"inputmode": "numeric"})
    after_expiry = SelectField(_l("When it lapses, count"), validate_choice=False, choices=[
        SelectChoice("rule", _l("The experience each level's rule counts")),
        SelectChoice("since_upgrade", _l("The experience since the upgrade"))])


class TierLevelForm(FlaskForm):
    name = StringField(_l("Level name"), render_kw={"maxlength": 60})
    threshold = StringField(_l("Experience threshold"), render_kw={"inputmode": "numeric"})
    rule = SelectField(_l("Upgrade rule"), validate_choice=False, choices=[
        SelectChoice("window", _l("Experience in the last X months")),
        SelectChoice("accumulated", _l("All experience (the level is then kept for good)"))])
    window_months = StringField(_l("X (months)"), render_kw={"inputmode": "numeric"},
                                default="12")


class PointsAlarmForm(FlaskForm):
    daily_threshold = StringField(_l("Points in one day above which a member is abnormal "
                                     "(empty: off)"), render_kw={"inputmode": "numeric"})
    block_earning = BooleanField(_l("Abnormal members earn no points"))
    block_redeeming = BooleanField(_l("Abnormal members cannot spend points"))
    emails = TextAreaField(_l("Send the daily report to (one email per line)"),
                           render_kw={"rows": 2})


class InteractionEventForm(FlaskForm):
    name = StringField(_l("Event name"), render_kw={"maxlength": 60})
    key = StringField(_l("ID (what tills and apps send)"), render_kw={"maxlength": 32})
    points = StringField(_l("Points"), default="0", render_kw={"inputmode": "numeric"})
    experience = StringField(_l("Experience"), default="0", render_kw={"inputmode": "numeric"})
    daily_cap = StringField(_l("At most per day"), render_kw={"inputmode": "numeric"})
    monthly_cap = StringField(_l("At most per month"), render_kw={"inputmode": "numeric"})
    total_cap = StringField(_l("At most ever"), render_kw={"inputmode": "numeric"})


# --- activities ------------------------------------------------------------------------------

def _checkboxes(label):
    return SelectMultipleField(label, choices=[], validate_choice=False,
                               widget=ListWidget(prefix_label=False),
                               option_widget=CheckboxInput())


class ActivityForm(FlaskForm):
    """An activity's own fields; the gift rows are read from the request by the view
    (`gift-<i>-<name>`), as many as the merchant filled in."""

    name = StringField(_l("Activity name"), render_kw={"maxlength": 120, "required": True})
    code = StringField(_l("Activity code"), render_kw={"maxlength": 40, "required": True,
                                                       "autocapitalize": "characters"})
    starts_at = StringField(_l("Starts"), render_kw={"type": "datetime-local",
                                                     "required": True})
    ends_at = StringField(_l("Ends"), render_kw={"type": "datetime-local", "required": True})
    description = TextAreaField(_l("Description and terms"), render_kw={"rows": 3})
    required_fields = _checkboxes(_l("Fields to complete"))
    plan_ids = _checkboxes(_l("Card plans"))
    tier_ids = _checkboxes(_l("Tiers"))
    segment_ids = _checkboxes(_l("Segments"))
    tag_ids = _checkboxes(_l("Tags"))
    points = StringField(_l("Points"), default="0", render_kw={"inputmode": "numeric"})
    lapse_days = StringField(_l("Days since the last purchase"),
                             render_kw={"inputmode": "numeric"})
    notify = BooleanField(_l("Tell members when their gift arrives"), default=True)


# --- top-up plans ---------------------------------------------------------------------------

class TopupPlanForm(FlaskForm):
    """A top-up plan's fields as typed; amounts in major units, percentages as "12.5".
    The per-date time rows are read from the request by the view (`per_date-<day>-from`)."""

    name = StringField(_l("Plan name"), render_kw={"maxlength": 120, "required": True})
    currency = SelectField(_l("Currency"), choices=[], validate_choice=False)
    starts_at = StringField(_l("Valid from"), render_kw={"type": "datetime-local"})
    ends_at = StringField(_l("Valid until"), render_kw={"type": "datetime-local"})
    schedule_frequency = SelectField(_l("Effective dates"), choices=[], validate_choice=False)
    schedule_weekdays = _checkboxes(_l("Days of the week"))
    schedule_monthdays = _checkboxes(_l("Days of the month"))
    schedule_times = SelectField(_l("Effective time"), choices=[], validate_choice=False)
    schedule_window_from = StringField(_l("From"), render_kw={"type": "time"})
    schedule_window_to = StringField(_l("Until"), render_kw={"type": "time"})
    store_mode = SelectField(_l("Store scope"), choices=[], validate_choice=False)
    store_ids = _checkboxes(_l("Stores"))
    organisations = _checkboxes(_l("Organisations"))
    groups = _checkboxes(_l("Store groups"))
    plan_ids = _checkboxes(_l("Card plans"))
    tier_ids = _checkboxes(_l("Tiers"))
    segment_ids = _checkboxes(_l("Segments"))
    tag_ids = _checkboxes(_l("Tags"))
    upgrade_tier_id = SelectField(_l("Tier upgrade after top-up"), choices=[],
                                  validate_choice=False)
    amount = StringField(_l("Top-up amount"), render_kw={"inputmode": "decimal"})
    bonus = StringField(_l("Top-up bonus"), render_kw={"inputmode": "decimal"})
    bonus_points = StringField(_l("Bonus points"), render_kw={"inputmode": "numeric"})
    min_amount = StringField(_l("Least top-up"), render_kw={"inputmode": "decimal"})
    max_amount = StringField(_l("Most top-up"), render_kw={"inputmode": "decimal"})
    bonus_percent = StringField(_l("Bonus (percent of the amount)"),
                                render_kw={"inputmode": "decimal"})
    points_percent = StringField(_l("Points (percent of the amount)"),
                                 render_kw={"inputmode": "decimal"})
    bonus_min = StringField(_l("Bonus at the least amount"), render_kw={"inputmode": "decimal"})
    bonus_max = StringField(_l("Bonus at the most amount"), render_kw={"inputmode": "decimal"})
    points_min = StringField(_l("Points at the least amount"),
                             render_kw={"inputmode": "numeric"})
    points_max = StringField(_l("Points at the most amount"),
                             render_kw={"inputmode": "numeric"})
    gift = SelectField(_l("Gift"), choices=[], validate_choice=False)
    first_bonus = BooleanField(_l("First top-up bonus"))
    first_bonus_percent = StringField(_l("Extra bonus (percent of the amount)"),
                                      render_kw={"inputmode": "decimal"})
    first_points_percent = StringField(_l("Extra points (percent of the amount)"),
                                       render_kw={"inputmode": "decimal"})
    first_gift = SelectField(_l("First top-up gift"), choices=[], validate_choice=False)
    benefit_ids = StringField(_l("Bonus benefits (ids)"))
    cover = FileField(_l("Cover image"), render_kw={"accept": "image/png,image/jpeg"})
    first_topup_only = BooleanField(_l("First top-up only"))
    stock = StringField(_l("Stock"), render_kw={"inputmode": "numeric"})
    visible = BooleanField(_l("Shown to members"), default=True)
    channels = _checkboxes(_l("Channels"))
    spend_product_ids = TextAreaField(_l("Spending restricted to these items"),
                                      render_kw={"rows": 2})
    per_member_limit = StringField(_l("Purchases per member"),
                                   render_kw={"inputmode": "numeric"})
    same_day_rule = SelectField(_l("On the top-up day"), choices=[], validate_choice=False)
    same_day_percent = StringField(_l("Usable share of the top-up that day, %"),
                                   render_kw={"inputmode": "decimal"})
    agreement = TextAreaField(_l("Agreement"), render_kw={"rows": 3})
    description = TextAreaField(_l("Description"), render_kw={"rows": 3})


class RechargeCodeForm(FlaskForm):
    count = StringField(_l("Number of codes"), default="100",
                        render_kw={"inputmode": "numeric", "required": True})
    amount = StringField(_l("Top-up amount of each code"), render_kw={"inputmode": "decimal"})
    scenario = StringField(_l("Scenario"), render_kw={"maxlength": 120, "required": True})
    store_ids = _checkboxes(_l("Stores (none ticked: every store)"))
    channels = _checkboxes(_l("Channels"))
    valid_until = StringField(_l("Valid until (empty: no end)"),
                              render_kw={"type": "datetime-local"})
