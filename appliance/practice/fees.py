"""How a product's fee keys read, one place for the customer's prompt, the coach and the
evaluator.

``Product.fees`` maps keys such as ``annual_fee`` or ``foreign_transaction_pct`` to amounts. A
key ending in ``_pct``, ``_percent`` or ``_rate`` is a rate (percent), not an amount
(:func:`is_rate`); :func:`times_a_year` reads from the key how often a fee is charged; and
:func:`fee_label` names a key in the session's language ("foreign transaction fee" /
"境外交易手续费", not "foreign transaction pct"). :func:`money` writes an amount with its
currency ("695 USD" / "695 美元").
"""

from __future__ import annotations

from appliance.practice.model import Language

RATE_SUFFIXES = ("_pct", "_percent", "_rate")
"""Product.fees keys with these endings are rates (percent), not yearly amounts."""

FEE_LABELS_ZH = {
    "annual_fee": "年费",
    "monthly_fee": "月费",
    "foreign_transaction_pct": "境外交易手续费",
    "cash_advance_pct": "预借现金手续费",
    "balance_transfer_pct": "余额转移手续费",
    "supplementary_card_fee": "附属卡费",
    "late_payment_fee": "逾期还款费",
    "card_replacement_fee": "补卡费",
    "overlimit_fee": "超限费",
    "returned_payment_fee": "还款退回费",
}
"""Chinese names of common fee keys; another key is shown in English words."""

CURRENCIES_ZH = {
    "USD": "美元",
    "CNY": "元",
    "RMB": "元",
    "HKD": "港元",
    "TWD": "新台币",
    "SGD": "新加坡元",
    "EUR": "欧元",
    "GBP": "英镑",
    "JPY": "日元",
    "AUD": "澳元",
    "CAD": "加元",
}
"""How a Chinese sentence names a currency code; another code is written as it is."""


def is_rate(key: str) -> bool:
    """Whether the fee ``key`` is a rate in percent (``foreign_transaction_pct``)."""
    return key.endswith(RATE_SUFFIXES)


def times_a_year(key: str) -> int:
    """How often a fee of ``Product.fees`` is charged in a year, read from its key: 1 for an
    annual or yearly fee (``annual_fee``), 12 for a monthly one (``monthly_fee``), 0 for a
    charge that applies only when something happens or is asked for (``late_payment_fee``,
    ``supplementary_card_fee``, ``card_replacement_fee``): those are listed, not totalled, so
    the yearly cost is what every customer pays."""
    words = key.lower().split("_")
    if any(w in ("annual", "annually", "yearly", "year") for w in words):
        return 1
    if any(w in ("monthly", "month") for w in words):
        return 12
    return 0


def fee_label(key: str, language: Language = "en") -> str:
    """The fee ``key`` in words: its Chinese name when there is one, else the key's words, a
    percentage key named as the fee it is ("cash_advance_pct" -> "cash advance fee")."""
    if language == "zh" and key in FEE_LABELS_ZH:
        return FEE_LABELS_ZH[key]
    stem = key
    for suffix in ("_pct", "_percent"):
        if stem.endswith(suffix):
            stem = stem.removesuffix(suffix)
            if not stem.endswith(("fee", "charge", "rate", "interest", "apr")):
                stem += "_fee"
    return stem.replace("_", " ")


def money(amount: float, currency: str, language: Language = "en") -> str:
    """``amount`` with its currency: "25,000 USD", "12.50 USD"; in Chinese "25,000 美元"."""
    number = f"{amount:,.0f}" if amount == int(amount) else f"{amount:,.2f}"
    unit = CURRENCIES_ZH.get(currency.upper(), currency) if language == "zh" else currency
    return f"{number} {unit}"
