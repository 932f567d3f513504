# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""Write the demo pack's knowledge documents from pack.json's product facts (run at dev time).

    python -m appliance.practice.demo.generate

writes, under appliance/practice/demo/files/: a bilingual product sheet PDF with a text layer
(reportlab; Chinese in its built-in CID font STSong-Light, no font file needed), an FAQ XLSX
(openpyxl), an SOP DOCX (python-docx) and a scanned flyer JPEG (Pillow with a Noto CJK or
DejaVu font, slightly rotated, with grain and blur like a scan). Every amount is taken from
the pack's product, so the documents always agree with the facts the NPC and coach use.
The generated files are committed: the appliance never runs this (reportlab is a dev
dependency) and the files ship inside the package.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

from appliance.practice.demo.loader import FILES_DIR, read_pack
from appliance.practice.model import Product

PDF_NAME = "aurora-platinum-product-sheet.pdf"
XLSX_NAME = "aurora-platinum-faq.xlsx"
DOCX_NAME = "aurora-platinum-sop.docx"
FLYER_NAME = "aurora-platinum-flyer-scan.jpg"

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
)


def amount(value: float) -> str:
    """695 -> '695', 25000 -> '25,000', 2.5 -> '2.5'."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,}"


@dataclass(frozen=True)
class Facts:
    """The numbers every document quotes, from the English and Chinese product rows."""

    en: Product
    zh: Product

    @property
    def fee(self) -> str:
        return amount(self.en.fees["annual_fee"])

    @property
    def supplementary(self) -> str:
        return amount(self.en.fees["supplementary_card_fee"])

    @property
    def late(self) -> str:
        return amount(self.en.fees["late_payment_fee"])

    @property
    def cash_pct(self) -> str:
        return amount(self.en.fees["cash_advance_pct"])

    @property
    def fx_pct(self) -> str:
        return amount(self.en.fees["foreign_transaction_pct"])

    @property
    def waiver_spend(self) -> str:
        spend = next(w.min_annual_spend for w in self.en.waivers if w.fee == "annual_fee")
        assert spend is not None
        return amount(spend)

    @property
    def cur(self) -> str:
        return self.en.currency


def facts() -> Facts:
    """The English and Chinese products of the pack (their fees must be the same)."""
    pack = read_pack()
    en, zh = pack.products[0], pack.products[1]
    if en.fees != zh.fees or en.currency != zh.currency:
        raise SystemExit("pack.json: the English and Chinese products must have the same fees")
    return Facts(
        Product(**{f: getattr(en, f) for f in Product.__struct_fields__}),
        Product(**{f: getattr(zh, f) for f in Product.__struct_fields__}),
    )


def fee_rows_en(f: Facts) -> list[tuple[str, str]]:
    """(item, amount) rows of the English fee table."""
    return [
        ("Annual fee", f"{f.cur} {f.fee}"),
        (
            "Annual fee waiver",
            f"Spend {f.cur} {f.waiver_spend} in a card year: next year's fee waived",
        ),
        ("Supplementary card", f"First card free, then {f.cur} {f.supplementary} a year each"),
        ("Foreign transaction fee", f"{f.fx_pct}%"),
        ("Late payment fee", f"{f.cur} {f.late}"),
        ("Cash advance fee", f"{f.cash_pct}% of the amount"),
    ]


def fee_rows_zh(f: Facts) -> list[tuple[str, str]]:
    """(项目, 金额) rows of the Chinese fee table."""
    return [
        ("年费", f"{f.fee} 美元"),
        ("年费减免", f"一个卡年内消费满 {f.waiver_spend} 美元，免下一卡年年费"),
        ("附属卡", f"第一张免费，此后每张每年 {f.supplementary} 美元"),
        ("境外交易手续费", f"{f.fx_pct}%"),
        ("逾期还款费", f"{f.late} 美元"),
        ("预借现金手续费", f"交易金额的 {f.cash_pct}%"),
    ]


# --- PDF ---------------------------------------------------------------------------------------


def write_pdf(f: Facts, path: Path) -> None:
    """Two pages with a text layer: English, then Simplified Chinese."""
    from reportlab import rl_config  # type: ignore[import-untyped]
    from reportlab.lib import colors  # type: ignore[import-untyped]
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet  # type: ignore[import-untyped]
    from reportlab.lib.units import mm  # type: ignore[import-untyped]
    from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont  # type: ignore[import-untyped]
    from reportlab.platypus import (  # type: ignore[import-untyped]
        PageBreak,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    rl_config.invariant = 1  # no timestamp or random id: the same input gives the same bytes
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    base = getSampleStyleSheet()
    h1 = base["Heading1"]
    h2 = base["Heading2"]
    body = base["BodyText"]
    zh_body = ParagraphStyle("zh", parent=body, fontName="STSong-Light", leading=16, wordWrap="CJK")
    zh_h1 = ParagraphStyle("zh1", parent=h1, fontName="STSong-Light")
    zh_h2 = ParagraphStyle("zh2", parent=h2, fontName="STSong-Light")

    def table(rows: list[tuple[str, str]], style: ParagraphStyle, head: tuple[str, str]) -> Table:
        data = [[Paragraph(a, style), Paragraph(b, style)] for a, b in [head, *rows]]
        t = Table(data, colWidths=[55 * mm, 110 * mm])
        t.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4f0")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return t

    en, zh = f.en, f.zh
    story = [
        Paragraph(f"{en.name}: product sheet", h1),
        Paragraph(en.description, body),
        Spacer(1, 4 * mm),
        Paragraph("Fees and charges", h2),
        table(fee_rows_en(f), body, ("Item", "Amount")),
        Paragraph("Benefits", h2),
        *[Paragraph(f"- {b}", body) for b in en.benefits],
        Paragraph("Eligibility", h2),
        *[Paragraph(f"- {e}", body) for e in en.eligibility],
        Spacer(1, 4 * mm),
        Paragraph(
            "Rewards depend on eligible spending. Credit is subject to approval. "
            "Fees as of the date of this sheet.",
            body,
        ),
        PageBreak(),
        Paragraph(f"{zh.name}：产品说明书", zh_h1),
        Paragraph(zh.description, zh_body),
        Spacer(1, 4 * mm),
        Paragraph("费用说明", zh_h2),
        table(fee_rows_zh(f), zh_body, ("项目", "金额")),
        Paragraph("持卡权益", zh_h2),
        *[Paragraph(f"- {b}", zh_body) for b in zh.benefits],
        Paragraph("申请条件", zh_h2),
        *[Paragraph(f"- {e}", zh_body) for e in zh.eligibility],
        Spacer(1, 4 * mm),
        Paragraph("积分回馈以合格消费为准。信用额度以审批结果为准。", zh_body),
    ]
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        title=f"{en.name} product sheet",
        author="SalesBoost demo pack",
        leftMargin=20 * mm,
        rightMargin=20 * mm,
    )
    doc.build(story)


# --- XLSX --------------------------------------------------------------------------------------


def faq_en(f: Facts) -> list[tuple[str, str]]:
    """English FAQ rows."""
    return [
        (
            "What is the annual fee?",
            f"The annual fee is {f.cur} {f.fee}, charged once per card year.",
        ),
        (
            "Can the annual fee be waived?",
            f"Yes. Spend {f.cur} {f.waiver_spend} or more in a card year and next year's "
            f"{f.cur} {f.fee} fee is waived automatically.",
        ),
        (
            "Is there a foreign transaction fee?",
            f"No. The foreign transaction fee is {f.fx_pct}%: you pay no extra when you spend abroad.",
        ),
        (
            "How much does a supplementary card cost?",
            f"The first supplementary card is free; each further card costs {f.cur} {f.supplementary} a year.",
        ),
        (
            "How do I earn points?",
            "5 points per USD 1 on flights, hotels and dining; 1 point per USD 1 on everything else. "
            "Points never expire while the account is open.",
        ),
        (
            "What is the travel credit?",
            "USD 300 every card year towards flights and hotels booked with the card.",
        ),
        (
            "Who can apply?",
            "Applicants aged 21 or over with an annual income of USD 60,000 or more and a good "
            "credit history. Approval is subject to a credit check.",
        ),
        (
            "What happens if I pay late?",
            f"A late payment fee of {f.cur} {f.late} applies, and interest is charged on the balance.",
        ),
        (
            "I want to cancel because of the fee. What are my options?",
            f"Talk to us first: if you expect to spend {f.cur} {f.waiver_spend} this year, next "
            "year's fee is waived. You can also review which benefits you use (lounges, travel "
            "credit, insurance) before you decide.",
        ),
    ]


def faq_zh(f: Facts) -> list[tuple[str, str]]:
    """Chinese FAQ rows."""
    return [
        ("年费是多少？", f"年费为 {f.fee} 美元，每个卡年收取一次。"),
        (
            "年费可以减免吗？",
            f"可以。一个卡年内消费满 {f.waiver_spend} 美元，下一卡年 {f.fee} 美元年费自动免除。",
        ),
        ("境外消费有手续费吗？", f"没有。境外交易手续费为 {f.fx_pct}%，境外消费不额外收费。"),
        ("附属卡收费吗？", f"第一张附属卡免费；此后每张附属卡每年 {f.supplementary} 美元。"),
        (
            "积分怎么累积？",
            "机票、酒店、餐饮每消费 1 美元得 5 积分，其他消费每 1 美元得 1 积分。账户有效期间积分永不过期。",
        ),
        ("旅行礼遇金是什么？", "每个卡年 300 美元，用于用卡预订的机票和酒店。"),
        (
            "谁可以申请？",
            "年满 21 周岁、年收入 60,000 美元或以上、信用记录良好者。以信用审批结果为准。",
        ),
        ("逾期还款会怎样？", f"收取 {f.late} 美元逾期还款费，并对欠款计收利息。"),
        (
            "我因为年费想销卡，有什么办法？",
            f"请先和我们沟通：如果您今年预计消费满 {f.waiver_spend} 美元，下一卡年年费可免除。"
            "您也可以先回顾自己常用哪些权益（贵宾室、旅行礼遇金、保险）再做决定。",
        ),
    ]


def write_xlsx(f: Facts, path: Path) -> None:
    """Two sheets: FAQ (English) and 常见问题 (Chinese), one question per row."""
    import datetime as dt

    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    fixed = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).replace(tzinfo=None)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.properties.creator = "SalesBoost demo pack"
    sheets = [("FAQ (English)", ("Question", "Answer"), faq_en(f))]
    sheets.append(("常见问题", ("问题", "回答"), faq_zh(f)))
    for n, (title, head, rows) in enumerate(sheets):
        ws = wb.active if n == 0 else wb.create_sheet()
        assert ws is not None
        ws.title = title
        ws.append(head)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for q, a in rows:
            ws.append((q, a))
        ws.column_dimensions["A"].width = 45
        ws.column_dimensions["B"].width = 90
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    wb.save(path)


# --- DOCX --------------------------------------------------------------------------------------


def write_docx(f: Facts, path: Path) -> None:
    """The call SOPs (retention, new card) in English, then in Chinese."""
    import datetime as dt

    from docx import Document

    doc = Document()
    doc.core_properties.author = "SalesBoost demo pack"
    doc.core_properties.created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    doc.core_properties.modified = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    doc.add_heading(f"{f.en.name}: call standard operating procedures", 0)
    doc.add_heading("1. Retention call (customer wants to cancel)", 1)
    for step in (
        "Greet the customer by name, thank them for their loyalty and state the reason for the call.",
        "Acknowledge the concern about the annual fee without arguing. Ask what prompted the call.",
        "Discover usage: yearly spend on the card, trips per year, lounges and travel credit used.",
        f"Explain the waiver: spending {f.cur} {f.waiver_spend} in a card year waives next year's "
        f"{f.cur} {f.fee} annual fee. Show how close their current spend is.",
        "Link benefits they actually use to their value in dollars (travel credit USD 300, "
        "lounge visits, no foreign transaction fees).",
        "Offer options, not pressure: keep the card with a plan to reach the waiver, or a "
        "follow-up call before the next statement. Never promise a refund you cannot authorise.",
        "Confirm the next step and summarise what was agreed.",
    ):
        doc.add_paragraph(step, style="List Number")
    doc.add_heading("2. New-card pitch", 1)
    for step in (
        "Open with the customer's name and ask permission to take a few minutes.",
        "Ask about travel, dining and monthly spending before presenting the card.",
        "Present two or three benefits that match what they said; state the annual fee "
        f"({f.cur} {f.fee}) and the waiver threshold ({f.cur} {f.waiver_spend}) plainly.",
        "Handle doubts with facts; compare honestly with no-fee cards.",
        "Check eligibility: aged 21+, income USD 60,000+, good credit history. Approval is "
        "subject to a credit check: never promise approval.",
        "Ask for the application or agree a concrete follow-up.",
    ):
        doc.add_paragraph(step, style="List Number")
    doc.add_heading("3. Compliance", 1)
    for rule in (
        "Never describe the card or its rewards as risk-free or guaranteed.",
        "No pressure tactics such as 'sign today or lose the offer'.",
        "Disclose every fee accurately when asked.",
    ):
        doc.add_paragraph(rule, style="List Bullet")

    doc.add_heading(f"{f.zh.name}：通话标准作业流程", 0)
    doc.add_heading("一、挽留来电（客户要求销卡）", 1)
    for step in (
        "称呼客户姓名问候，感谢其长期使用，说明通话目的。",
        "认可客户对年费的顾虑，不争辩；询问来电原因。",
        "了解用卡情况：年消费金额、每年出行次数、贵宾室和旅行礼遇金使用情况。",
        f"说明减免政策：一个卡年内消费满 {f.waiver_spend} 美元，免下一卡年 {f.fee} 美元年费；告诉客户目前距离门槛还差多少。",
        "把客户实际在用的权益折算成金额（300 美元旅行礼遇金、贵宾室、免境外交易手续费）。",
        "提供选择而不是施压：保留卡片并制定达到减免门槛的计划，或在下期账单前回访。不得承诺无权批准的退费。",
        "确认下一步并总结双方约定。",
    ):
        doc.add_paragraph(step, style="List Number")
    doc.add_heading("二、新卡营销", 1)
    for step in (
        "称呼客户姓名开场，征得客户同意占用几分钟。",
        "先了解出行、餐饮和每月消费情况，再介绍产品。",
        f"介绍两三项与客户需求匹配的权益；清楚说明年费（{f.fee} 美元）和减免门槛（{f.waiver_spend} 美元）。",
        "用事实回应疑虑；与免年费卡做诚实比较。",
        "核对申请条件：年满 21 周岁、年收入 60,000 美元以上、信用良好。以审批结果为准，不得承诺一定获批。",
        "请客户申请，或约定具体的后续跟进。",
    ):
        doc.add_paragraph(step, style="List Number")
    doc.add_heading("三、合规要求", 1)
    for rule in (
        "不得称产品或回馈“无风险”“保本”“稳赚”。",
        "不得使用“今天不办就没了”等施压话术。",
        "客户询问时如实披露全部费用。",
    ):
        doc.add_paragraph(rule, style="List Bullet")
    doc.save(str(path))


# --- flyer -------------------------------------------------------------------------------------


def flyer_lines(f: Facts) -> list[tuple[str, int]]:
    """(text, font size) lines of the flyer."""
    return [
        (f.en.name.upper(), 78),
        (f.zh.name, 78),
        (f"Annual fee {f.cur} {f.fee}", 56),
        (f"年费 {f.fee} 美元", 56),
        (f"Spend {f.cur} {f.waiver_spend} a year: next year's fee waived", 40),
        (f"年消费满 {f.waiver_spend} 美元免下一年年费", 44),
        ("5x points on travel and dining", 40),
        ("Unlimited airport lounge access", 40),
        ("机场贵宾室无限次使用", 44),
        ("USD 300 travel credit every year", 40),
    ]


def _font(size: int) -> ImageFont.FreeTypeFont:

    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    raise SystemExit("no CJK font found: install fonts-noto-cjk (or point FONT_CANDIDATES at one)")


def write_flyer(f: Facts, path: Path) -> None:
    """A printed flyer as a scanner would return it: off-white, rotated 1.5 degrees, grainy."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(20260101)
    width, height = 1500, 1300
    page = Image.new("RGB", (width, height), (250, 248, 240))
    draw = ImageDraw.Draw(page)
    draw.rectangle((30, 30, width - 30, 200), fill=(18, 40, 92))
    y = 60
    for n, (text, size) in enumerate(flyer_lines(f)):
        font = _font(size)
        colour = (255, 255, 255) if n == 0 else (20, 20, 30)
        draw.text((70, y), text, font=font, fill=colour)
        y += int(size * 1.45) + (40 if n == 0 else 12)
    draw.text(
        (70, height - 90),
        "Apply at any branch  /  欢迎到任一网点申请",
        font=_font(34),
        fill=(60, 60, 60),
    )
    scan = page.rotate(
        1.5, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(235, 235, 228)
    )
    noise = Image.effect_noise(scan.size, 18).convert("RGB")
    scan = Image.blend(scan, noise, 0.08)
    for _ in range(400):  # dust specks
        x, yy = rng.randrange(scan.width), rng.randrange(scan.height)
        ImageDraw.Draw(scan).point((x, yy), fill=(90, 90, 90))
    scan = scan.filter(ImageFilter.GaussianBlur(0.6))
    scan.save(path, "JPEG", quality=82)


def main(out: Path = FILES_DIR) -> None:
    """Write all four documents."""
    out.mkdir(parents=True, exist_ok=True)
    f = facts()
    write_pdf(f, out / PDF_NAME)
    write_xlsx(f, out / XLSX_NAME)
    write_docx(f, out / DOCX_NAME)
    write_flyer(f, out / FLYER_NAME)
    for name in (PDF_NAME, XLSX_NAME, DOCX_NAME, FLYER_NAME):
        print(out / name, (out / name).stat().st_size, "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
