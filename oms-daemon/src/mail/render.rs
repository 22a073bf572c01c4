//! The mails' text: templates kept in `oms-daemon/templates/mail/`
//! (embedded with `include_str!`, so an edit rebuilds), filled at send
//! time from the order as it is then.
//!
//! The template language is the least that works: `{{name}}` is a value,
//! `{{#name}}...{{/name}}` is kept only when `name` is not empty. In the
//! HTML templates every value is escaped (`& < > " '`), whoever supplied
//! it: customer names, product names and SKUs come from users, and the
//! tracking link from the operator. Only the rendered lines, themselves
//! built from escaped values, are inserted as markup. A name in a template
//! without a value is an error, caught by the tests of every kind.

use oms_core::{ClaimedNotification, MailOrder, NotificationKind};

const ORDER_TXT: &str = include_str!("../../templates/mail/order.txt");
const ORDER_HTML: &str = include_str!("../../templates/mail/order.html");
const LINE_TXT: &str = include_str!("../../templates/mail/line.txt");
const LINE_HTML: &str = include_str!("../../templates/mail/line.html");

/// A mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A value for a template.
#[derive(Clone, Copy)]
enum Fill<'a> {
    /// Plain text: escaped in HTML.
    Text(&'a str),
    /// Markup already safe for the HTML template (and its plain-text twin
    /// for the text one).
    Markup { text: &'a str, html: &'a str },
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills `template`; `html` selects escaping.
fn fill(template: &str, html: bool, values: &[(&str, Fill<'_>)]) -> Result<String, String> {
    let lookup = |name: &str| -> Result<Fill<'_>, String> {
        values
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("template names {{{{{name}}}}}, which has no value"))
    };
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "template has an unclosed {{".to_string())?;
        let name = after[..close].trim();
        rest = &after[close + 2..];
        if let Some(section) = name.strip_prefix('#') {
            let end_tag = format!("{{{{/{section}}}}}");
            let end = rest
                .find(&end_tag)
                .ok_or_else(|| format!("template section {section} is not closed"))?;
            let inner = &rest[..end];
            rest = &rest[end + end_tag.len()..];
            let shown = match lookup(section)? {
                Fill::Text(t) => !t.is_empty(),
                Fill::Markup { text, .. } => !text.is_empty(),
            };
            if shown {
                out.push_str(&fill(inner, html, values)?);
            }
            continue;
        }
        match (lookup(name)?, html) {
            (Fill::Text(t), true) => out.push_str(&escape_html(t)),
            (Fill::Text(t), false) => out.push_str(t),
            (Fill::Markup { html: m, .. }, true) => out.push_str(m),
            (Fill::Markup { text: t, .. }, false) => out.push_str(t),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Subject and first sentence of each kind of mail.
fn wording(kind: NotificationKind, expired: bool, order: i64) -> (String, String) {
    match (kind, expired) {
        (NotificationKind::Cancelled, true) => (
            format!("Order #{order} expired"),
            format!(
                "Your order #{order} has expired: it was cancelled because it was not paid in time."
            ),
        ),
        (NotificationKind::Cancelled, false) => (
            format!("Order #{order} cancelled"),
            format!("Your order #{order} has been cancelled."),
        ),
        (NotificationKind::Placed, _) => (
            format!("Order #{order} received"),
            format!(
                "Thank you for your order #{order}. We have received it and will be in touch when your payment arrives."
            ),
        ),
        (NotificationKind::Paid, _) => (
            format!("Order #{order}: payment received"),
            format!(
                "We have received the payment for your order #{order}. We will let you know when it ships."
            ),
        ),
        (NotificationKind::Fulfilled, _) => (
            format!("Order #{order} has shipped"),
            format!("Your order #{order} has shipped and is on its way."),
        ),
    }
}

/// The mail for a claimed row about `mail`'s order. `public_url` is the
/// base of the tracking link (`OMS_PUBLIC_URL`), if any.
pub fn render(
    claim: &ClaimedNotification,
    mail: &MailOrder,
    public_url: Option<&str>,
) -> Result<Rendered, String> {
    let order = &mail.order;
    let order_id = order.id.to_string();
    let (subject, headline) = wording(claim.kind, claim.expired, order.id.get());
    let mut lines_text = String::new();
    let mut lines_html = String::new();
    for item in &order.items {
        let quantity = item.quantity.to_string();
        let unit_price = item.unit_price.to_string();
        let line_total = item.line_total.to_string();
        let values = [
            ("quantity", Fill::Text(&quantity)),
            ("name", Fill::Text(&item.name)),
            ("sku", Fill::Text(item.sku.as_str())),
            ("unit_price", Fill::Text(&unit_price)),
            ("line_total", Fill::Text(&line_total)),
        ];
        lines_text.push_str(&fill(LINE_TXT, false, &values)?);
        lines_html.push_str(&fill(LINE_HTML, true, &values)?);
    }
    let tracking_url = public_url
        .map(|base| {
            format!(
                "{}/track/{}",
                base.trim_end_matches('/'),
                order.tracking_code
            )
        })
        .unwrap_or_default();
    let total = order.total.to_string();
    let currency = order.currency.to_string();
    let values = [
        ("subject", Fill::Text(&subject)),
        ("customer_name", Fill::Text(&mail.customer_name)),
        ("headline", Fill::Text(&headline)),
        ("order_id", Fill::Text(&order_id)),
        (
            "lines",
            Fill::Markup {
                text: lines_text.trim_end_matches('\n'),
                html: lines_html.trim_end_matches('\n'),
            },
        ),
        ("total", Fill::Text(&total)),
        ("currency", Fill::Text(&currency)),
        ("status", Fill::Text(claim.kind.status().as_str())),
        ("tracking_code", Fill::Text(&order.tracking_code)),
        ("tracking_url", Fill::Text(&tracking_url)),
    ];
    Ok(Rendered {
        text: fill(ORDER_TXT, false, &values)?,
        html: fill(ORDER_HTML, true, &values)?,
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_core::{
        Currency, CustomerId, NotificationId, Order, OrderId, OrderItem, ProductId, Sku, Status,
        Timestamp,
    };

    fn mail(customer_name: &str, item_name: &str) -> MailOrder {
        let usd = Currency::USD;
        MailOrder {
            order: Order {
                id: OrderId(42),
                customer_id: CustomerId(3),
                status: Status::Paid,
                items: vec![OrderItem {
                    product_id: ProductId(1),
                    sku: Sku::parse("MUG-1").unwrap(),
                    name: item_name.to_string(),
                    unit_price: usd.from_minor(1250),
                    quantity: 2,
                    line_total: usd.from_minor(2500),
                }],
                total: usd.from_minor(2500),
                currency: usd,
                payment_collected: true,
                tracking_code: "TRK0000000001ABCDEF".into(),
                idempotency_key: None,
                version: 2,
                created_at: Timestamp::from_millis(0),
                updated_at: Timestamp::from_millis(0),
            },
            customer_name: customer_name.to_string(),
        }
    }

    fn claim(kind: NotificationKind, expired: bool) -> ClaimedNotification {
        ClaimedNotification {
            id: NotificationId(7),
            order_id: OrderId(42),
            customer_id: Some(CustomerId(3)),
            recipient: "ada@example.com".into(),
            kind,
            expired,
            attempts: 1,
            message_id: "<notification-7.abc@shop.example>".into(),
        }
    }

    #[test]
    fn every_kind_renders_both_parts_with_every_field() {
        let subjects = [
            (NotificationKind::Placed, false, "Order #42 received"),
            (NotificationKind::Paid, false, "Order #42: payment received"),
            (NotificationKind::Fulfilled, false, "Order #42 has shipped"),
            (NotificationKind::Cancelled, false, "Order #42 cancelled"),
            (NotificationKind::Cancelled, true, "Order #42 expired"),
        ];
        for (kind, expired, subject) in subjects {
            let r = render(
                &claim(kind, expired),
                &mail("Ada", "Blue mug"),
                Some("https://shop.example/"),
            )
            .unwrap();
            assert_eq!(r.subject, subject);
            for part in [&r.text, &r.html] {
                assert!(!part.contains("{{"), "{kind:?}: {part}");
                for expected in [
                    "Ada",
                    "Order #42",
                    "Blue mug",
                    "MUG-1",
                    "12.50",
                    "25.00 USD",
                    kind.status().as_str(),
                    "TRK0000000001ABCDEF",
                    "https://shop.example/track/TRK0000000001ABCDEF",
                ] {
                    assert!(part.contains(expected), "{kind:?} lacks {expected}: {part}");
                }
            }
            assert!(
                r.text.contains("2 x Blue mug (MUG-1) at 12.50 = 25.00"),
                "{}",
                r.text
            );
            assert!(
                r.html.contains("<td>Blue mug</td><td>MUG-1</td><td>2</td>"),
                "{}",
                r.html
            );
        }
        let expired = render(
            &claim(NotificationKind::Cancelled, true),
            &mail("Ada", "x"),
            None,
        )
        .unwrap();
        assert!(expired.text.contains("expired"), "{}", expired.text);
    }

    #[test]
    fn without_a_public_url_there_is_no_link() {
        let r = render(
            &claim(NotificationKind::Paid, false),
            &mail("Ada", "Mug"),
            None,
        )
        .unwrap();
        assert!(!r.html.contains("<a "), "{}", r.html);
        assert!(!r.text.contains("Track your order"), "{}", r.text);
        assert!(r.text.contains("Tracking code: TRK0000000001ABCDEF"));
    }

    #[test]
    fn customer_strings_are_escaped_in_html_and_kept_in_text() {
        let evil = "<script>alert(1)</script>";
        let r = render(
            &claim(NotificationKind::Placed, false),
            &mail(evil, "\"><img src=x onerror=alert(2)> & co"),
            Some("https://shop.example/\"onmouseover=\"x"),
        )
        .unwrap();
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(!r.html.contains("<img"), "{}", r.html);
        assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            r.html
                .contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt; &amp; co")
        );
        assert!(
            r.html
                .contains("href=\"https://shop.example/&quot;onmouseover=&quot;x/track/")
        );
        // The plain-text part is not markup: it shows the name as given.
        assert!(r.text.contains(&format!("Hello {evil},")));
    }

    #[test]
    fn the_template_language_reports_mistakes() {
        assert!(fill("{{missing}}", true, &[]).is_err());
        assert!(fill("{{open", true, &[]).is_err());
        assert!(fill("{{#s}}never closed", true, &[("s", Fill::Text("x"))]).is_err());
        assert_eq!(
            fill(
                "a{{#s}}[{{v}}]{{/s}}b",
                true,
                &[("s", Fill::Text("")), ("v", Fill::Text("<"))]
            )
            .unwrap(),
            "ab"
        );
        assert_eq!(
            fill(
                "a{{#s}}[{{v}}]{{/s}}b",
                true,
                &[("s", Fill::Text("1")), ("v", Fill::Text("<"))]
            )
            .unwrap(),
            "a[&lt;]b"
        );
        assert_eq!(escape_html("'&'"), "&#39;&amp;&#39;");
    }
}
