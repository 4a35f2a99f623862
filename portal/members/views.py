"""The member portal: sign-in by code, registration pages, the card, the profile."""
from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_user, logout_user

from portal.db import db
from portal.extensions import limiter, limits_are_shared
from portal.members import services
from portal.members.attributes import normalize_mobile
from portal.members.errors import MemberError, MemberErrorCode
from portal.members.forms import CodeForm, MobileForm, profile_form, registration_form
from portal.members.models import CodePurpose, MemberCard
from portal.notifications import services as notifications
from portal.web.auth import MemberUser, current_member, is_previewing, member_required
from portal.web.forms import EmptyForm, apply_error, shown_status
from portal.web.render import render

bp = Blueprint("members", __name__)


def _mobile_key() -> str:
    """Rate-limit key: the number a code goes to (from the form, or the pending code)."""
    raw = request.form.get("mobile", "")
    if raw:
        try:
            return "mobile:" + normalize_mobile(raw, current_app.config["DEFAULT_REGION"])
        except MemberError:
            return "mobile:invalid"
    otp = services.pending_code(db.session, session.get("code_id"))
    return "mobile:" + (otp.mobile if otp else "none")


def _per_number():
    return current_app.config["OTP_SEND_LIMIT_PER_NUMBER"]


def _per_ip():
    return current_app.config["OTP_SEND_LIMIT_PER_IP"]


send_limits = [limiter.limit(_per_number, key_func=_mobile_key, methods=["POST"]),
               limiter.limit(_per_ip, methods=["POST"])]


def limited(view):
    for decorate in send_limits:
        view = decorate(view)
    return view


def _check_sending() -> None:
    """Codes go out only while their limits are counted where every worker sees them.
    With Redis away each process would count alone, and a number could be flooded with
    texts the merchant pays for, so sending stops (fails closed) until it is back."""
    if not limits_are_shared():
        raise MemberError(MemberErrorCode.CODES_UNAVAILABLE,
                          _("We cannot send codes just now. Please try again in a few "
                            "minutes."), field="mobile")


def _refused_status(error: MemberError) -> int:
    return 503 if error.code == MemberErrorCode.CODES_UNAVAILABLE else 422


def _sign_in_member(member) -> None:
    session.pop("code_id", None)
    session.pop("attribution", None)
    session.pop("preview_member_id", None)
    login_user(MemberUser(member))


def _safe_next(target: str | None, fallback: str, *, external: bool = False) -> str:
    """A redirect target: a local path; an https:// link only where the merchant set it."""
    if target and target.startswith("/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    if external and target and target.startswith("https://"):
        return target
    return fallback


@bp.get("/")
def index():
    if current_member:
        return redirect(url_for("members.card"), 303)
    return render("members/index.html")


@bp.route("/sign-in", methods=["GET", "POST"])
@limited
def sign_in():
    if current_member and not is_previewing():
        return redirect(url_for("members.card"), 303)
    form = MobileForm()
    if request.method == "GET" and session.get("prefill_mobile"):
        form.mobile.data = session.pop("prefill_mobile")
    if form.validate_on_submit():
        try:
            _check_sending()
            otp = services.request_code(db.session, form.mobile.data, CodePurpose.SIGN_IN)
        except MemberError as e:
            apply_error(form, e)
            return render("members/sign_in.html", form=form, status=_refused_status(e))
        session["code_id"] = otp.id
        session["next"] = _safe_next(request.args.get("next"), "")
        return redirect(url_for("members.verify"), 303)
    return render("members/sign_in.html", form=form, status=shown_status())


@bp.route("/verify", methods=["GET", "POST"])
def verify():
    otp = services.pending_code(db.session, session.get("code_id"))
    if otp is None or otp.purpose == CodePurpose.CHANGE_MOBILE:
        return redirect(url_for("members.sign_in"), 303)
    form = CodeForm()
    if form.validate_on_submit():
        try:
            if otp.purpose == CodePurpose.REGISTER:
                member = services.complete_registration(db.session, otp.id, form.code.data)
                page = db.session.get(services.RegistrationPage, otp.payload["page_id"])
                target = _claim_target() or _safe_next(
                    page.after_submit_url, url_for("members.card"), external=True)
                flash(_("Welcome! Your membership card is ready."), "success")
            else:
                member = services.sign_in_with_code(db.session, otp.id, form.code.data)
                target = _claim_target() \
                    or _safe_next(session.pop("after_sign_in", ""), "", external=True) \
                    or _safe_next(session.pop("next", ""), url_for("members.card"))
        except MemberError as e:
            apply_error(form, e)
            return _verify_page(otp, form, 422)
        _sign_in_member(member)
        return redirect(target, 303)
    return _verify_page(otp, form, shown_status())


def _dev_message(otp):
    """The code message itself, for the development banner (never in production)."""
    if not current_app.config["SHOW_DEV_CODES"]:
        return None
    return notifications.last_code_message(db.session, otp.mobile)


def _claim_target() -> str | None:
    """A coupon or gift card claim that sent the visitor to sign up comes first afterwards
    (spec 7.2)."""
    token = session.get("claim_after")
    if token:
        return url_for("coupons.claim", token=token)
    gift = session.pop("giftcard_after", None)
    return url_for("giftcards.claim", token=gift) if gift else None


def _verify_page(otp, form, status=200):
    back = None
    if otp.purpose == CodePurpose.REGISTER:
        page = db.session.get(services.RegistrationPage, otp.payload["page_id"])
        back = url_for("members.register", slug=page.slug) if page else None
    return render("members/verify.html", otp=otp, form=form, back=back,
                  dev_message=_dev_message(otp), status=status)


@bp.post("/verify/resend")
@limited
def resend():
    otp = services.pending_code(db.session, session.get("code_id"))
    if otp is None or otp.purpose == CodePurpose.CHANGE_MOBILE:
        return redirect(url_for("members.sign_in"), 303)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        _check_sending()
        new = services.request_code(db.session, otp.mobile, CodePurpose(otp.purpose),
                                    payload=otp.payload)
    except MemberError as e:
        flash(str(e), "error")
        if e.code == MemberErrorCode.CODES_UNAVAILABLE:
            return _verify_page(otp, CodeForm(formdata=None), 503)
        return redirect(url_for("members.verify"), 303)
    session["code_id"] = new.id
    flash(_("We sent you a new code."), "success")
    return redirect(url_for("members.verify"), 303)


# --- registration pages ----------------------------------------------------------------

@bp.get("/t/<code>")
def tracking_link(code: str):
    link = services.page_by_link(db.session, code)
    if link is None or not link.page.is_published:
        abort(404)
    if current_member:
        return redirect(url_for("members.register", slug=link.page.slug), 303)
    # First touch wins: a later link does not overwrite where the visitor came from.
    if "attribution" not in session:
        session["attribution"] = services.Attribution(
            link.page_id, link.id, link.campaign, link.source, link.content).as_dict()
    _count_visit(link.page_id, link.id)
    return redirect(url_for("members.register", slug=link.page.slug), 303)


def _count_visit(page_id: int, link_id: int | None) -> None:
    seen = session.get("visited", [])
    if page_id not in seen:
        services.record_visit(db.session, page_id, link_id)
        session["visited"] = [*seen, page_id][-20:]


@bp.route("/r/<slug>", methods=["GET", "POST"])
@limited
def register(slug: str):
    page = services.published_page(db.session, slug)
    if page is None:
        abort(404)
    if current_member:
        # Members never register twice: they go where the merchant set.
        return redirect(_safe_next(page.existing_member_url, url_for("members.card"),
                                   external=True), 303)
    if request.method == "GET":
        if "attribution" not in session:
            values = {k: services.clean_tracking(request.args.get(k))
                      for k in ("campaign", "source", "content")}
            session["attribution"] = services.Attribution(page.id, None, **values).as_dict()
        _count_visit(page.id, None)
    form = registration_form(page.fields, services.attribute_catalogue(db.session))
    if form.validate_on_submit():
        answers = {f.attribute: form[f.attribute].data for f in page.fields
                   if f.attribute in form}
        try:
            _check_sending()
            otp = services.start_registration(db.session, page.id, form.mobile.data, answers,
                                              session.get("attribution"))
        except MemberError as e:
            if e.code == MemberErrorCode.ALREADY_MEMBER:
                session["prefill_mobile"] = form.mobile.data
                # Set by the merchant, so an https:// address is allowed after sign-in.
                session["after_sign_in"] = page.existing_member_url or ""
                flash(str(e), "info")
                return redirect(url_for("members.sign_in"), 303)
            apply_error(form, e)
            return render("members/register.html", page=page, form=form,
                          status=_refused_status(e))
        session["code_id"] = otp.id
        return redirect(url_for("members.verify"), 303)
    return render("members/register.html", page=page, form=form, status=shown_status())


# --- the signed-in member --------------------------------------------------------------

@bp.get("/card")
@member_required
def card():
    from portal.loyalty.services import tiers

    home = services.member_home(db.session, current_member.id)
    return render("members/card.html", home=home,
                  progress=tiers.progress(db.session, current_member.id))


@bp.get("/cards/<int:card_id>")
@member_required
def card_detail(card_id: int):
    card = db.session.get(MemberCard, card_id)
    if card is None or card.member_id != current_member.id:
        abort(404)
    return render("members/card_detail.html", card=card)


@bp.get("/me")
@member_required
def profile():
    return render("members/profile.html", member=current_member,
                  custom=services.custom_values(db.session, current_member))


@bp.route("/me/edit", methods=["GET", "POST"])
@member_required
def edit_profile():
    member = current_member._get_current_object()
    editable = services.profile_attributes(db.session)
    form = profile_form(editable, data=None if request.method == "POST"
                        else services.profile_values(member, editable))
    if form.validate_on_submit():
        answers = {name: form[name].data for name in editable}
        try:
            services.update_profile(db.session, member.id, answers)
        except MemberError as e:
            apply_error(form, e)
            return render("members/profile_edit.html", form=form,
                          member=member, status=422)
        flash(_("Your profile is saved."), "success")
        return redirect(url_for("members.profile"), 303)
    return render("members/profile_edit.html", form=form, member=member,
                  status=shown_status())


@bp.route("/me/mobile", methods=["GET", "POST"])
@member_required
@limited
def change_mobile():
    form = MobileForm()
    form.mobile.label.text = _("New mobile number")
    if form.validate_on_submit():
        try:
            _check_sending()
            otp = services.start_mobile_change(db.session, current_member.id, form.mobile.data)
        except MemberError as e:
            apply_error(form, e)
            return render("members/mobile_change.html", form=form,
                          otp=None, status=_refused_status(e))
        session["mobile_code_id"] = otp.id
        return redirect(url_for("members.confirm_mobile"), 303)
    return render("members/mobile_change.html", form=form, otp=None, status=shown_status())


@bp.route("/me/mobile/verify", methods=["GET", "POST"])
@member_required
def confirm_mobile():
    otp = services.pending_code(db.session, session.get("mobile_code_id"))
    if otp is None or otp.member_id != current_member.id:
        return redirect(url_for("members.change_mobile"), 303)
    form = CodeForm()
    if form.validate_on_submit():
        try:
            services.confirm_mobile_change(db.session, current_member.id, otp.id,
                                           form.code.data)
        except MemberError as e:
            apply_error(form, e)
            return _mobile_verify_page(otp, form, 422)
        session.pop("mobile_code_id", None)
        flash(_("Your mobile number is changed."), "success")
        return redirect(url_for("members.profile"), 303)
    return _mobile_verify_page(otp, form, shown_status())


def _mobile_verify_page(otp, form, status=200):
    return render("members/mobile_change.html", form=form, otp=otp,
                  dev_message=_dev_message(otp), status=status)


@bp.post("/sign-out")
@member_required
def sign_out():
    if not EmptyForm().validate_on_submit():
        abort(400)
    services.sign_out(db.session, current_member.id)
    logout_user()
    session.clear()
    flash(_("You are signed out."), "success")
    return redirect(url_for("members.index"), 303)


@bp.post("/locale")
def set_locale():
    if not EmptyForm().validate_on_submit():
        abort(400)
    locale = request.form.get("locale", "")
    if locale not in current_app.config["LANGUAGES"]:
        abort(400)
    session["locale"] = locale
    if current_member and not is_previewing():
        services.set_locale(db.session, current_member.id, locale)
    from portal.web.auth import current_staff

    staff = current_staff()
    if staff is not None:
        from portal.staff.services import set_locale as staff_locale

        staff_locale(db.session, staff.id, locale)
    return redirect(_safe_next(request.form.get("back"), url_for("members.index")), 303)


@bp.get("/media/<path:name>")
def media(name: str):
    """Public images merchants uploaded (registration banners, sharing covers)."""
    return send_from_directory(current_app.config["UPLOAD_DIR"] + "/public", name,
                               max_age=86400)
