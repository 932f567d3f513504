"""How fee keys read in the customer's prompt, the coach's tips and the evaluator's terms."""

from __future__ import annotations

from appliance.practice.fees import fee_label, is_rate, money, times_a_year


def test_a_percentage_key_is_named_as_the_fee_it_is() -> None:
    assert fee_label("foreign_transaction_pct") == "foreign transaction fee"
    assert fee_label("cash_advance_percent") == "cash advance fee"
    assert fee_label("balance_transfer_fee_pct") == "balance transfer fee"
    assert fee_label("purchase_interest_rate") == "purchase interest rate"
    assert fee_label("annual_fee") == "annual fee"
    assert is_rate("foreign_transaction_pct") and is_rate("purchase_interest_rate")
    assert not is_rate("annual_fee")


def test_chinese_names_and_the_english_fallback() -> None:
    assert fee_label("annual_fee", "zh") == "年费"
    assert fee_label("foreign_transaction_pct", "zh") == "境外交易手续费"
    assert fee_label("lounge_guest_fee", "zh") == "lounge guest fee"  # no name: its words


def test_money_in_each_language() -> None:
    assert money(25000, "USD") == "25,000 USD"
    assert money(12.5, "USD") == "12.50 USD"
    assert money(25000, "USD", "zh") == "25,000 美元"
    assert money(300, "cny", "zh") == "300 元"
    assert money(300, "CHF", "zh") == "300 CHF"


def test_how_often_a_fee_is_charged() -> None:
    assert times_a_year("annual_fee") == 1
    assert times_a_year("monthly_fee") == 12
    assert times_a_year("late_payment_fee") == 0
