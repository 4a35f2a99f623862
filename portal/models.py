"""Every model, imported once so Alembic and the tests see the whole schema."""
from portal.api.models import ApiClient  # noqa: F401
from portal.benefits.models import (  # noqa: F401
    Benefit,
    BenefitPackage,
    BenefitPackageItem,
    PackagePurchase,
    PackageRule,
    PackageSettings,
)
from portal.campaigns.models import (  # noqa: F401
    Activity,
    ActivityGift,
    Grant,
    Participation,
)
from portal.consistency.models import CheckRun  # noqa: F401
from portal.coupons.models import (  # noqa: F401
    ClaimLink,
    Coupon,
    CouponPackage,
    CouponTemplate,
    IssueBatch,
    MemberTemplateCount,
    PackageItem,
    Redemption,
)
from portal.db import Base
from portal.giftcards.models import (  # noqa: F401
    GiftCard,
    GiftCardCharge,
    GiftCardImport,
    GiftCardProduct,
    GiftCardTransaction,
)
from portal.imports.models import CustomerImport, CustomerImportFailure  # noqa: F401
from portal.ledger import Account, Entry  # noqa: F401
from portal.loyalty.models import (  # noqa: F401
    AbnormalEvent,
    EarningRule,
    InteractionEvent,
    InteractionRecord,
    LoyaltySettings,
    Order,
    OrderRefund,
    PointsAlarm,
    TierSettings,
)
from portal.members.models import (  # noqa: F401
    CardPlan,
    CustomAttribute,
    Member,
    MemberCard,
    OneTimeCode,
    RegistrationField,
    RegistrationPage,
    Segment,
    Store,
    Tag,
    Tier,
    TrackingLink,
)
from portal.notifications.models import (  # noqa: F401
    InboxMessage,
    MessageSetting,
    OutboxMessage,
)
from portal.payments.models import Payment, PaymentEvent, PaymentRefund  # noqa: F401
from portal.rights.models import DataRequest  # noqa: F401
from portal.staff.models import AuditEntry, StaffUser  # noqa: F401
from portal.students.models import StudentSettings, StudentVerification  # noqa: F401
from portal.wallet.models import (  # noqa: F401
    Charge,
    ChargeRefund,
    RechargeCode,
    RechargeCodeBatch,
    SmartPlan,
    SmartTier,
    Topup,
    TopupPlan,
)

metadata = Base.metadata
